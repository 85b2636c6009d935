"""Meta-training speed of MAML on Finn's Omniglot CNN, random 28x28 inputs.

    python benchmarks/maml_throughput.py --ways 5 --shots 1 --queries 15 --meta-batch 32 --inner-steps 1

Times `fit` itself (a Keras callback around each meta-iteration) after a
warm-up that includes tracing. Last line:
`ms_per_iter=<median> tasks_per_s=<...> peak_rss_mb=<...>`.
"""

import argparse
import resource
import time

import keras
import numpy as np
import tensorflow as tf

import tfmeta


class IterationTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--queries", type=int, default=15, help="query examples per class")
    parser.add_argument("--meta-batch", type=int, default=32, help="tasks per meta-iteration")
    parser.add_argument("--inner-steps", type=int, default=1)
    parser.add_argument("--first-order", action="store_true")
    parser.add_argument("--pooling", default="stride", choices=tfmeta.models.backbones.POOLINGS)
    parser.add_argument("--iterations", type=int, default=30, help="timed meta-iterations")
    parser.add_argument("--warmup", type=int, default=3, help="untimed meta-iterations")
    parser.add_argument("--intra-op-threads", type=int, default=0,
                        help="TensorFlow intra-op threads; 0 keeps TensorFlow's default")
    args = parser.parse_args(argv)
    if args.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)

    rng = np.random.default_rng(0)
    tasks, support, query = args.meta_batch, args.ways * args.shots, args.ways * args.queries
    batch = {
        "support_x": rng.random([tasks, support, 28, 28, 1], np.float32),
        "support_y": np.tile(np.repeat(np.arange(args.ways), args.shots), [tasks, 1]).astype(np.int32),
        "query_x": rng.random([tasks, query, 28, 28, 1], np.float32),
        "query_y": np.tile(np.repeat(np.arange(args.ways), args.queries), [tasks, 1]).astype(np.int32),
    }
    stream = tf.data.Dataset.from_tensors(batch).repeat()
    maml = tfmeta.MAML(
        tfmeta.models.omniglot_cnn(args.ways, pooling=args.pooling),
        inner_lr=0.4, inner_steps=args.inner_steps, first_order=args.first_order,
    )
    maml.compile(optimizer=keras.optimizers.Adam(1e-3))
    maml.fit(stream, steps_per_epoch=args.warmup, epochs=1, verbose=0)
    timer = IterationTimer()
    maml.fit(stream, steps_per_epoch=args.iterations, epochs=1, verbose=2, callbacks=[timer])

    median = float(np.median(timer.times))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.ways}-way {args.shots}-shot, {args.queries} queries, meta-batch {tasks}, "
          f"{args.inner_steps} inner step(s), {'first' if args.first_order else 'second'} order, "
          f"{args.pooling} pooling, intra-op threads: {args.intra_op_threads or 'default'}")
    print(f"ms_per_iter={1000 * median:.0f} tasks_per_s={tasks / median:.1f} peak_rss_mb={peak_mb:.0f}")


if __name__ == "__main__":
    main()
