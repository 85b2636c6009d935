"""Meta-training speed of MAML (or ANIL) on Finn's Omniglot CNN, random 28x28 inputs.

    python benchmarks/maml_throughput.py --ways 5 --shots 1 --queries 15 --meta-batch 32 --inner-steps 1
    python benchmarks/maml_throughput.py --algorithm anil --ways 20 --meta-batch 16 --inner-steps 5

Times `fit` itself (a Keras callback around each meta-iteration) after a
warm-up that includes tracing. Last line: `ms_per_iter=<median>
tasks_per_s=<...> peak_rss_mb=<...> cpu_ms_per_iter=<median>`.
`--profile-ops N` also prints the op types that take the time
(TensorFlow's profiler, N meta-iterations).
"""

import argparse

import tfmeta
from timing import add_common_flags, apply_settings, benchmark_fit


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_flags(parser)
    parser.add_argument("--algorithm", default="maml", choices=("maml", "anil"))
    parser.add_argument("--inner-steps", type=int, default=1)
    parser.add_argument("--first-order", action="store_true")
    parser.add_argument("--pooling", default="stride", choices=tfmeta.models.backbones.POOLINGS)
    parser.add_argument("--inference", default="per-query", choices=tfmeta.algorithms.INFERENCE_MODES,
                        help="how the query passes are normalized (default: %(default)s)")
    args = parser.parse_args(argv)
    apply_settings(args)
    learner = tfmeta.ANIL if args.algorithm == "anil" else tfmeta.MAML
    maml = learner(
        tfmeta.models.omniglot_cnn(args.ways, pooling=args.pooling),
        inner_lr=0.4, inner_steps=args.inner_steps, first_order=args.first_order, inference=args.inference,
        allow_mixed_precision=True,  # timing only: the meta-gradient's precision is measured elsewhere
    )
    order = "first" if args.first_order else "second"
    benchmark_fit(maml, args, f"{args.algorithm.upper()}, {args.inner_steps} inner step(s), {order} order, "
                              f"{args.pooling} pooling, {args.inference} inference", "tasks_per_s")


if __name__ == "__main__":
    main()
