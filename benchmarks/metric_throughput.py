"""Training speed of Prototypical and Matching Networks on the conv4 embedding, random 28x28 inputs.

    python benchmarks/metric_throughput.py --algorithm protonet --ways 60 --shots 1 --queries 5 --meta-batch 1
    python benchmarks/metric_throughput.py --algorithm matching --fce --ways 5 --shots 1 --meta-batch 32

Times `fit` after a warm-up that includes tracing. Last line:
`ms_per_iter=<median> episodes_per_s=<...> peak_rss_mb=<...>`.
"""

import argparse

import keras

import tfmeta
from timing import add_common_flags, apply_threads, peak_rss_mb, random_meta_batch, time_fit


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_flags(parser)
    parser.add_argument("--algorithm", choices=("protonet", "matching"), default="protonet")
    parser.add_argument("--fce", action="store_true", help="Matching Networks' full context embeddings")
    args = parser.parse_args(argv)
    apply_threads(args)

    if args.algorithm == "protonet":
        model = tfmeta.PrototypicalNetwork(tfmeta.models.conv4_embedding())
    else:
        model = tfmeta.MatchingNetwork(tfmeta.models.conv4_embedding(), fce=args.fce)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    batch = random_meta_batch(args.ways, args.shots, args.queries, args.meta_batch)
    median = time_fit(model, batch, args.iterations, args.warmup)
    print(f"{args.algorithm}{' (FCE)' if args.fce else ''} {args.ways}-way {args.shots}-shot, "
          f"{args.queries} queries, meta-batch {args.meta_batch}, "
          f"intra-op threads: {args.intra_op_threads or 'default'}")
    print(f"ms_per_iter={1000 * median:.0f} episodes_per_s={args.meta_batch / median:.1f} "
          f"peak_rss_mb={peak_rss_mb():.0f}")


if __name__ == "__main__":
    main()
