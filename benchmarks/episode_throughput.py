"""How fast the episode pipeline delivers meta-batches of Omniglot.

    python benchmarks/episode_throughput.py

Last line: `ms_per_meta_batch=<median> episodes_per_s=<...>`.
"""

import argparse
import time

import numpy as np

import tfmeta
from tfmeta.data.locations import DATA_DIR_HELP


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    parser.add_argument("--split", default="vinyals-train", choices=tfmeta.data.OMNIGLOT_SPLITS)
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=200, help="meta-batches to time")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    data = tfmeta.data.load_omniglot(args.split, args.data_dir)
    print(f"read {data} in {time.perf_counter() - start:.1f} s")
    stream = tfmeta.data.episodes(
        data, args.ways, args.shots, args.queries, seed=0, meta_batch_size=args.meta_batch
    )
    iterator = iter(stream)
    next(iterator)  # start-up: tracing, filling the prefetch buffer
    times = []
    for _ in range(args.batches):
        start = time.perf_counter()
        next(iterator)
        times.append(time.perf_counter() - start)
    median = float(np.median(times))
    print(f"ms_per_meta_batch={1000 * median:.2f} episodes_per_s={args.meta_batch / np.mean(times):.0f}")


if __name__ == "__main__":
    main()
