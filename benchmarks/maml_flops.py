"""Floating-point operations of one MAML meta-iteration on Finn's Omniglot CNN, counted from its graph.

    python benchmarks/maml_flops.py --ways 5 --shots 1 --queries 1 --meta-batch 32 --inner-steps 1

Traces one task's meta-gradient (the inner steps on the support set, the
query pass at the fast weights, and the gradient of the query loss with
respect to the initial weights) with tfmeta's `adapt_and_predict`, and adds
up the flops of the convolutions (forward and both gradients) and matmuls
it runs, from their shapes, two per multiply-add. Element-wise ops (batch
normalization, ReLU, the inner update: under 2% of the flops TensorFlow's
profiler registers for this graph) are left out. A meta-iteration is
`--meta-batch` such tasks. Last line: `gflops_per_iter=<...>`.
"""

import argparse
import collections

import keras
import tensorflow as tf

import tfmeta
from tfmeta.algorithms.maml import adapt_and_predict

from random_tasks import add_task_flags

CONVOLUTIONS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")


def op_flops(op):
    """Two flops per multiply-add of a convolution or a matmul; 0 for other ops.

    Either gradient of a convolution makes as many multiply-adds as the
    convolution: one per (output position, kernel weight) pair.
    """
    if op.type in CONVOLUTIONS:
        output = op.outputs[0] if op.type == "Conv2D" else op.inputs[2]  # the convolution's output (gradient)
        kernel = op.outputs[0] if op.type == "Conv2DBackpropFilter" else op.inputs[1]
        height, width, channels_in, _ = kernel.shape
        return 2 * output.shape.num_elements() * height * width * channels_in
    if op.type == "MatMul":
        a = op.inputs[0]
        inner = a.shape[0] if op.get_attr("transpose_a") else a.shape[1]
        return 2 * op.outputs[0].shape.num_elements() * inner
    return 0


def graph_flops(concrete_function):
    """{op type: (ops, flops)} of the ops a concrete function's outputs depend on.

    Ops the outputs do not need (a gradient function's gradient with respect
    to the images, say) are left out, as TensorFlow prunes them before
    running the graph. Refuses graphs with nested functions or control flow,
    whose ops the count would miss.
    """
    graph = concrete_function.graph
    nested = sorted({op.type for op in graph.get_operations()
                     if op.type in ("While", "StatelessWhile", "If", "StatelessIf", "PartitionedCall",
                                    "StatefulPartitionedCall")})
    if nested:
        raise ValueError(f"the graph calls nested functions or control flow ({nested}); their ops would not "
                         "be counted")
    needed, pending = set(), [tensor.op for tensor in concrete_function.outputs]
    while pending:
        op = pending.pop()
        if op.name not in needed:
            needed.add(op.name)
            pending.extend(tensor.op for tensor in op.inputs)
    counts = collections.defaultdict(lambda: [0, 0])
    for op in graph.get_operations():
        if op.name in needed:
            counts[op.type][0] += 1
            counts[op.type][1] += op_flops(op)
    return {op_type: tuple(value) for op_type, value in counts.items()}


def task_flops(ways, shots, queries, inner_steps, inference="per-query", first_order=False, pooling="stride"):
    """{op type: (ops, flops)} of one task's meta-gradient (MAML, inner rate 0.4)."""
    backbone = tfmeta.models.omniglot_cnn(ways, pooling=pooling)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    params = [tf.TensorSpec(v.shape, v.dtype) for v in backbone.trainable_variables]
    state = [tf.TensorSpec(v.shape, v.dtype) for v in backbone.non_trainable_variables]
    episode = {
        "support_x": tf.TensorSpec([ways * shots, 28, 28, 1], tf.float32),
        "support_y": tf.TensorSpec([ways * shots], tf.int32),
        "query_x": tf.TensorSpec([ways * queries, 28, 28, 1], tf.float32),
        "query_y": tf.TensorSpec([ways * queries], tf.int32),
    }

    @tf.function(autograph=False)
    def meta_gradient(params, state, episode):
        with tf.GradientTape() as tape:
            tape.watch(params)
            predictions, _ = adapt_and_predict(backbone, params, state, episode, loss_fn, 0.4, inner_steps,
                                               first_order=first_order, inference=inference)
            loss = loss_fn(episode["query_y"], predictions)
        return tape.gradient(loss, params)

    return graph_flops(meta_gradient.get_concrete_function(params, state, episode))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_task_flags(parser)
    parser.add_argument("--inner-steps", type=int, default=1)
    parser.add_argument("--first-order", action="store_true")
    parser.add_argument("--pooling", default="stride", choices=tfmeta.models.backbones.POOLINGS)
    parser.add_argument("--inference", default="per-query", choices=tfmeta.algorithms.INFERENCE_MODES)
    args = parser.parse_args(argv)
    counts = task_flops(args.ways, args.shots, args.queries, args.inner_steps, args.inference, args.first_order,
                        args.pooling)
    print(f"{'op type':>22} {'ops per task':>12} {'MFLOP per task':>14}")
    for op_type, (ops, flops) in sorted(counts.items(), key=lambda item: -item[1][1]):
        if flops:
            print(f"{op_type:>22} {ops:12d} {flops / 1e6:14.2f}")
    total = sum(flops for _, flops in counts.values())
    print(f"{args.ways}-way {args.shots}-shot, {args.queries} queries, {args.inner_steps} inner step(s), "
          f"{'first' if args.first_order else 'second'} order, {args.inference} inference, "
          f"meta-batch {args.meta_batch}")
    print(f"gflops_per_iter={args.meta_batch * total / 1e9:.3f}")


if __name__ == "__main__":
    main()
