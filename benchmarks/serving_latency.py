"""Latency of one few-shot request against an exported SavedModel.

    python benchmarks/serving_latency.py savedmodels/<name>/1 --ways 5 --shots 1 --queries 15
    python benchmarks/serving_latency.py savedmodels/<name>/1 --total-queries 1

Loads the SavedModel the way a server does (`tf.saved_model.load`, no tfmeta
or Keras involved), sends the same random request (`ways * shots` support
examples, `ways * queries` queries or `--total-queries`, pixels in [0, 1]) to
`serving_default` (or `--signature`) one at a time, and reports percentiles of the wall time per request,
fetching included. The untimed warm-up requests absorb one-off start-up costs;
the seconds the load and the first request took are printed before them.
Last line: `p50_ms=<...> p99_ms=<...>`.
"""

import argparse
import time

import numpy as np
import tensorflow as tf


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", help="a SavedModel version directory, e.g. savedmodels/maml-omniglot-5w1s/1")
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--queries", type=int, default=15, help="query examples per class")
    parser.add_argument("--total-queries", type=int, help="query examples in all, instead of --queries per class "
                                                          "(1: a client asking about one example)")
    parser.add_argument("--signature", default="serving_default", help="e.g. serving_transductive")
    parser.add_argument("--requests", type=int, default=200, help="timed requests")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    serve = tf.saved_model.load(args.export_dir).signatures[args.signature]
    load_seconds = time.perf_counter() - start
    queries = args.total_queries or args.ways * args.queries
    example_shape = serve.structured_input_signature[1]["support_x"].shape[1:]
    rng = np.random.default_rng(0)
    request = {
        "support_x": tf.constant(rng.random([args.ways * args.shots, *example_shape], np.float32)),
        "support_y": tf.constant(np.repeat(np.arange(args.ways, dtype=np.int32), args.shots)),
        "query_x": tf.constant(rng.random([queries, *example_shape], np.float32)),
    }
    start = time.perf_counter()
    serve(**request)
    print(f"loaded in {load_seconds:.1f} s; first request {time.perf_counter() - start:.1f} s")
    for _ in range(args.warmup - 1):
        serve(**request)
    times = []
    for _ in range(args.requests):
        start = time.perf_counter()
        outputs = serve(**request)
        {key: value.numpy() for key, value in outputs.items()}
        times.append(time.perf_counter() - start)
    p50, p99 = np.percentile(times, [50, 99]) * 1000
    print(f"{args.export_dir} {args.signature}: {args.requests} requests of {args.ways}-way {args.shots}-shot "
          f"({args.ways * args.shots} support, {queries} queries), one at a time")
    print(f"p50_ms={p50:.1f} p99_ms={p99:.1f}")


if __name__ == "__main__":
    main()
