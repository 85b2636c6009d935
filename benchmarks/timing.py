"""Shared by the throughput benchmarks: random episodes and a timed `fit`."""

import collections
import pathlib
import resource
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from random_tasks import add_task_flags, random_meta_batch


class IterationTimer(keras.callbacks.Callback):
    """Wall-clock and CPU time (the process's, all threads) of each meta-iteration."""

    def __init__(self):
        super().__init__()
        self.times, self.cpu_times = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.start, self.cpu_start = time.perf_counter(), time.process_time()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self.start)
        self.cpu_times.append(time.process_time() - self.cpu_start)


def benchmark_fit(model, args, description, rate_name):
    """Times `model.fit` on one random meta-batch, repeated, and prints the figures.

    The warm-up (`args.warmup` meta-iterations, tracing included) is not
    timed. Last printed line: `ms_per_iter=<median> <rate_name>=<...> peak_rss_mb=<...>
    cpu_ms_per_iter=<median>`; CPU time varies less than wall-clock time when other jobs share the cores.
    """
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    batch = random_meta_batch(args.ways, args.shots, args.queries, args.meta_batch)
    stream = tf.data.Dataset.from_tensors(batch).repeat()
    model.fit(stream, steps_per_epoch=args.warmup, epochs=1, verbose=0)
    timer = IterationTimer()
    model.fit(stream, steps_per_epoch=args.iterations, epochs=1, verbose=2, callbacks=[timer])
    median = float(np.median(timer.times))
    if args.profile_ops:
        print_op_profile(model, stream, args.profile_ops)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{description}, {args.ways}-way {args.shots}-shot, {args.queries} queries, meta-batch "
          f"{args.meta_batch}, intra-op threads: {args.intra_op_threads or 'default'}, {args.dtype_policy}")
    print(f"ms_per_iter={1000 * median:.0f} {rate_name}={args.meta_batch / median:.1f} "
          f"peak_rss_mb={peak_mb:.0f} cpu_ms_per_iter={1000 * float(np.median(timer.cpu_times)):.0f}")


def add_common_flags(parser):
    add_task_flags(parser)
    parser.add_argument("--iterations", type=int, default=30, help="timed meta-iterations")
    parser.add_argument("--warmup", type=int, default=3, help="untimed meta-iterations")
    add_intra_op_threads_flag(parser)
    parser.add_argument("--dtype-policy", default="float32",
                        help="Keras dtype policy of the model, e.g. mixed_float16 (GPUs) or mixed_bfloat16")
    parser.add_argument("--profile-ops", type=int, default=0, metavar="N",
                        help="also profile N meta-iterations and print the time spent per op type")


def add_intra_op_threads_flag(parser):
    parser.add_argument("--intra-op-threads", type=int, default=0,
                        help="TensorFlow intra-op threads; 0 keeps TensorFlow's default")


def set_intra_op_threads(args):
    """Applies `--intra-op-threads`; call before TensorFlow runs any op."""
    if args.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)


def apply_settings(args):
    """Thread count and dtype policy; call before building the model."""
    set_intra_op_threads(args)
    keras.config.set_dtype_policy(args.dtype_policy)


def op_time_by_type(model, stream, iterations):
    """Op type -> (milliseconds, calls) per meta-iteration, summed over TensorFlow's threads.

    Runs `fit` under TensorFlow's profiler and reads the trace it writes.
    Its protobuf module ships inside TensorFlow but is not public API.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        model.fit(stream, steps_per_epoch=iterations, epochs=1, verbose=0)
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(next(pathlib.Path(logdir).rglob("*.xplane.pb")).read_bytes())
    milliseconds, calls = collections.Counter(), collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                # Op executions carry their op type; executor bookkeeping events do not.
                op_type = plane.event_metadata[event.metadata_id].display_name
                if op_type:
                    milliseconds[op_type] += event.duration_ps / 1e9 / iterations
                    calls[op_type] += 1 / iterations
    return {op_type: (milliseconds[op_type], calls[op_type]) for op_type, _ in milliseconds.most_common()}


def print_op_profile(model, stream, iterations, rows=12):
    """Prints where a meta-iteration's op time goes, largest op types first."""
    profile = op_time_by_type(model, stream, iterations)
    total = sum(ms for ms, _ in profile.values())
    ops = sum(calls for _, calls in profile.values())
    print(f"op time per meta-iteration, summed over threads: {total:.0f} ms in {ops:.0f} ops")
    for op_type, (ms, calls) in list(profile.items())[:rows]:
        print(f"  {op_type:40s} {ms:8.1f} ms {100 * ms / total:5.1f}% {calls:7.0f} calls")
