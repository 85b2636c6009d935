"""Meta-training speed of MAML on Finn's Omniglot CNN, random 28x28 inputs.

    python benchmarks/maml_throughput.py --ways 5 --shots 1 --queries 15 --meta-batch 32 --inner-steps 1

Times `fit` itself (a Keras callback around each meta-iteration) after a
warm-up that includes tracing. Last line:
`ms_per_iter=<median> tasks_per_s=<...> peak_rss_mb=<...>`.
"""

import argparse

import keras

import tfmeta
from timing import add_common_flags, apply_threads, peak_rss_mb, random_meta_batch, time_fit


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_flags(parser)
    parser.add_argument("--inner-steps", type=int, default=1)
    parser.add_argument("--first-order", action="store_true")
    parser.add_argument("--pooling", default="stride", choices=tfmeta.models.backbones.POOLINGS)
    args = parser.parse_args(argv)
    apply_threads(args)

    maml = tfmeta.MAML(
        tfmeta.models.omniglot_cnn(args.ways, pooling=args.pooling),
        inner_lr=0.4, inner_steps=args.inner_steps, first_order=args.first_order,
    )
    maml.compile(optimizer=keras.optimizers.Adam(1e-3))
    batch = random_meta_batch(args.ways, args.shots, args.queries, args.meta_batch)
    median = time_fit(maml, batch, args.iterations, args.warmup)
    print(f"MAML {args.ways}-way {args.shots}-shot, {args.queries} queries, meta-batch {args.meta_batch}, "
          f"{args.inner_steps} inner step(s), {'first' if args.first_order else 'second'} order, "
          f"{args.pooling} pooling, intra-op threads: {args.intra_op_threads or 'default'}")
    print(f"ms_per_iter={1000 * median:.0f} tasks_per_s={args.meta_batch / median:.1f} "
          f"peak_rss_mb={peak_rss_mb():.0f}")


if __name__ == "__main__":
    main()
