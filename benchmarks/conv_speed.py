"""How fast this machine runs the convolutions of a MAML step, next to its matmul speed.

    taskset -c 0 python benchmarks/conv_speed.py --intra-op-threads 1

Times the forward, backprop-input and backprop-filter convolutions of each
layer of Finn's Omniglot CNN on one task's query set (`ways * queries` images
of 28x28), and a square float32 matmul, at the same thread count. A
convolution that runs near the matmul's rate cannot be made much faster by
the library: only faster kernels or hardware can. Pin the process to one
core (`taskset -c 0`, as above) to compare per-core rates: a lone
convolution may use a free core even with one intra-op thread, while the
matmul does not. Last line:
`conv_ms_per_task=<...> conv_gflops=<...> matmul_gflops=<...>`: the time of
all of one task's query-set convolutions (one of each kind a second-order
step runs on the query set, per layer) and their rate, total flops over
total time.

`--groups G` runs G tasks' convolutions as one grouped convolution (each
task its own kernel, the tasks side by side on the channel axis), the way a
meta-batch of G tasks would be batched into one op; the figures stay per
task, so `--groups 1` and `--groups 32` compare one task at a time with a
meta-batch of 32 batched.
"""

import argparse
import os
import time

import numpy as np
import tensorflow as tf
from timing import add_intra_op_threads_flag, set_intra_op_threads

FILTERS = 64
KERNEL = 3
STRIDE = 2
STRIDES = [1, STRIDE, STRIDE, 1]  # NHWC


def finn_cnn_layers(images):
    """(input shape, output shape) of each convolution of Finn's CNN on `images` 28x28 inputs."""
    layers, size, channels = [], 28, 1
    for _ in range(4):
        out_size = -(-size // STRIDE)  # "same" padding
        layers.append(((images, size, size, channels), (images, out_size, out_size, FILTERS)))
        size, channels = out_size, FILTERS
    return layers


def seconds_per_call(function, arguments, repeats):
    """Median wall time of one call of `function` over `repeats` timed calls, after one untimed call."""
    function(*arguments)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*arguments)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def grouped(shape, groups):
    """`shape` with `groups` tasks side by side on its last (channel) axis."""
    return (*shape[:-1], shape[-1] * groups)


def check_grouping(input_shape, groups):
    """A grouped convolution of `groups` tasks gives each task's own convolution: the layout timed is right."""
    rng = np.random.default_rng(1)
    xs = rng.random((groups, *input_shape), np.float32)
    kernels = rng.random((groups, KERNEL, KERNEL, input_shape[-1], FILTERS), np.float32)
    # Task-major channels: task t's inputs and filters are the t-th block of each channel axis.
    together = tf.nn.conv2d(np.concatenate(xs, axis=-1), np.concatenate(kernels, axis=-1), STRIDES, "SAME")
    apart = np.concatenate([tf.nn.conv2d(x, k, STRIDES, "SAME") for x, k in zip(xs, kernels)], axis=-1)
    np.testing.assert_allclose(together.numpy(), apart, rtol=1e-4, atol=1e-3)


def convolution_ops(input_shape, output_shape, copies, groups):
    """The three convolutions of a layer, each run on `copies` different inputs per call.

    Several ops per call spread the call's fixed overhead; different inputs
    keep TensorFlow from merging them into one. Each op convolves `groups`
    tasks at once, with a kernel per task.
    """
    rng = np.random.default_rng(0)
    kernel = tf.constant(rng.random([KERNEL, KERNEL, input_shape[-1], FILTERS * groups], np.float32))
    input_shape, output_shape = grouped(input_shape, groups), grouped(output_shape, groups)
    xs = [tf.constant(rng.random(input_shape, np.float32)) for _ in range(copies)]
    dys = [tf.constant(rng.random(output_shape, np.float32)) for _ in range(copies)]

    @tf.function
    def forward(xs, kernel):
        return [tf.nn.conv2d(x, kernel, STRIDES, "SAME") for x in xs]

    @tf.function
    def backprop_input(dys, kernel):
        return [tf.nn.conv2d_transpose(dy, kernel, input_shape, STRIDES, "SAME") for dy in dys]

    @tf.function
    def backprop_filter(xs, dys):
        return [tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=kernel.shape, out_backprop=dy,
                                                strides=STRIDES, padding="SAME") for x, dy in zip(xs, dys)]

    return {"forward": (forward, (xs, kernel)), "backprop-input": (backprop_input, (dys, kernel)),
            "backprop-filter": (backprop_filter, (xs, dys))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--queries", type=int, default=15, help="query examples per class")
    parser.add_argument("--copies", type=int, default=8, help="convolutions per timed call")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per convolution")
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--groups", type=int, default=1,
                        help="tasks per convolution, batched as a grouped convolution (default: 1)")
    add_intra_op_threads_flag(parser)
    args = parser.parse_args(argv)
    set_intra_op_threads(args)
    if args.groups < 1:
        parser.error(f"--groups must be at least 1, got {args.groups}")

    total_flops = total_seconds = 0.0
    print(f"{'layer':>5} {'convolution':>16} {'ms':>7} {'GFLOP/s':>8}")
    for layer, (input_shape, output_shape) in enumerate(finn_cnn_layers(args.ways * args.queries)):
        # Two flops per multiply-add of the convolution; each of its two gradients has as many.
        flops = 2 * np.prod(output_shape) * KERNEL * KERNEL * input_shape[-1]
        if args.groups > 1:
            check_grouping(input_shape, args.groups)
        ops = convolution_ops(input_shape, output_shape, args.copies, args.groups)
        for name, (function, arguments) in ops.items():
            if layer == 0 and name == "backprop-input":
                continue  # the gradient with respect to the images: MAML never takes it
            seconds = seconds_per_call(function, arguments, args.repeats) / args.copies / args.groups
            total_flops, total_seconds = total_flops + flops, total_seconds + seconds
            print(f"{layer:5d} {name:>16} {1000 * seconds:7.3f} {flops / seconds / 1e9:8.1f}")

    a = tf.random.uniform([args.matmul_size, args.matmul_size])
    matmul = tf.function(lambda a: tf.matmul(a, a))
    matmul_seconds = seconds_per_call(matmul, (a,), args.repeats)
    matmul_gflops = 2 * args.matmul_size ** 3 / matmul_seconds / 1e9
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.ways * args.queries} images of 28x28 per task, {args.groups} task(s) per convolution, "
          f"{cores} core(s), "
          f"intra-op threads: {args.intra_op_threads or 'default'}; "
          f"{args.matmul_size}x{args.matmul_size} matmul")
    print(f"conv_ms_per_task={1000 * total_seconds:.1f} conv_gflops={total_flops / total_seconds / 1e9:.1f} "
          f"matmul_gflops={matmul_gflops:.1f}")


if __name__ == "__main__":
    main()
