"""Shared by the throughput benchmarks: random episodes and a timed `fit`."""

import resource
import time

import keras
import numpy as np
import tensorflow as tf


def random_meta_batch(ways, shots, queries, tasks, example_shape=(28, 28, 1), seed=0):
    """One meta-batch of random images with well-formed labels."""
    rng = np.random.default_rng(seed)

    def labels(per_class):
        return np.tile(np.repeat(np.arange(ways), per_class), [tasks, 1]).astype(np.int32)

    return {
        "support_x": rng.random([tasks, ways * shots, *example_shape], np.float32),
        "support_y": labels(shots),
        "query_x": rng.random([tasks, ways * queries, *example_shape], np.float32),
        "query_y": labels(queries),
    }


class IterationTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def time_fit(model, meta_batch, iterations, warmup):
    """Median seconds per meta-iteration of `model.fit`, after a warm-up that includes tracing."""
    stream = tf.data.Dataset.from_tensors(meta_batch).repeat()
    model.fit(stream, steps_per_epoch=warmup, epochs=1, verbose=0)
    timer = IterationTimer()
    model.fit(stream, steps_per_epoch=iterations, epochs=1, verbose=2, callbacks=[timer])
    return float(np.median(timer.times))


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def add_common_flags(parser):
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--queries", type=int, default=15, help="query examples per class")
    parser.add_argument("--meta-batch", type=int, default=32, help="tasks per meta-iteration")
    parser.add_argument("--iterations", type=int, default=30, help="timed meta-iterations")
    parser.add_argument("--warmup", type=int, default=3, help="untimed meta-iterations")
    parser.add_argument("--intra-op-threads", type=int, default=0,
                        help="TensorFlow intra-op threads; 0 keeps TensorFlow's default")


def apply_threads(args):
    if args.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
