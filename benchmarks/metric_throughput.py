"""Training speed of Prototypical and Matching Networks on the conv4 embedding, random 28x28 inputs.

    python benchmarks/metric_throughput.py --algorithm protonet --ways 60 --shots 1 --queries 5 --meta-batch 1
    python benchmarks/metric_throughput.py --algorithm matching --fce --ways 5 --shots 1 --meta-batch 32

Times `fit` after a warm-up that includes tracing. Last line:
`ms_per_iter=<median> episodes_per_s=<...> peak_rss_mb=<...> cpu_ms_per_iter=<median>`.
"""

import argparse

import tfmeta
from timing import add_common_flags, apply_settings, benchmark_fit


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_flags(parser)
    parser.add_argument("--algorithm", choices=("protonet", "matching"), default="protonet")
    parser.add_argument("--fce", action="store_true", help="Matching Networks' full context embeddings")
    args = parser.parse_args(argv)
    apply_settings(args)
    if args.algorithm == "protonet":
        model = tfmeta.PrototypicalNetwork(tfmeta.models.conv4_embedding())
    else:
        model = tfmeta.MatchingNetwork(tfmeta.models.conv4_embedding(), fce=args.fce)
    benchmark_fit(model, args, f"{args.algorithm}{' (FCE)' if args.fce else ''}", "episodes_per_s")


if __name__ == "__main__":
    main()
