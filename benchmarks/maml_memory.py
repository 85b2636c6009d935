"""Peak memory of MAML meta-training as inner steps grow, second and first order.

    python benchmarks/maml_memory.py --inner-steps 1 5 10 [--orders second first]

Runs `maml_throughput.py` once per configuration, each in a fresh process
(peak RSS is a per-process high-water mark), and prints a table of peak
resident memory and time per meta-iteration. Defaults: Finn's Omniglot CNN,
5-way 1-shot, 15 queries per class, meta-batch 32. Last line:
`peak_rss_mb <order>/<steps>=<MB> ...`.
"""

import argparse
import pathlib
import re
import subprocess
import sys

THROUGHPUT = pathlib.Path(__file__).with_name("maml_throughput.py")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inner-steps", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=3, help="timed meta-iterations per configuration")
    parser.add_argument("--intra-op-threads", type=int, default=1)
    parser.add_argument("--orders", nargs="+", choices=("second", "first"), default=["second", "first"],
                        help="meta-gradients to measure: second order, first order (--first-order) or both")
    args = parser.parse_args(argv)

    rows = []
    for order in args.orders:
        for steps in args.inner_steps:
            command = [sys.executable, str(THROUGHPUT), "--inner-steps", str(steps), "--meta-batch",
                       str(args.meta_batch), "--iterations", str(args.iterations), "--warmup", "1",
                       "--intra-op-threads", str(args.intra_op_threads)]
            if order == "first":
                command.append("--first-order")
            completed = subprocess.run(command, capture_output=True, text=True, check=True)
            figures = dict(re.findall(r"(\w+)=([\d.]+)", completed.stdout.strip().splitlines()[-1]))
            rows.append((order, steps, float(figures["peak_rss_mb"]), float(figures["ms_per_iter"])))
            print(f"{order} order, {steps:2d} inner step(s): peak {rows[-1][2]:6.0f} MB, "
                  f"{rows[-1][3]:6.0f} ms per meta-iteration", flush=True)
    print("peak_rss_mb " + " ".join(f"{order}/{steps}={mb:.0f}" for order, steps, mb, _ in rows))


if __name__ == "__main__":
    main()
