"""tfmeta's MAML beside learn2learn's and beside the floor, at Finn et al.'s and MAML++'s Omniglot configurations.

    python benchmarks/maml_vs_learn2learn.py --learn2learn-python PATH/TO/ENV/bin/python --rounds 3

5-way 1-shot, one query per class, second order, on random 28x28 images:
Finn et al.'s configuration (meta-batch 32, 1 inner step) and MAML++'s
(meta-batch 8, 5 inner steps). Each round runs, one after another in
separate processes, `maml_throughput.py` (one intra-op thread, as
`tfmeta train` on CPU; per-query and transductive inference) and
`learn2learn_maml.py` in the given interpreter (PyTorch's default threads,
and one thread). Then `maml_flops.py` counts each configuration's flops and
`conv_speed.py` measures this CPU's convolution rate on one core (pinned),
on 5 images (one task's support or query set here) and on 75 (15 queries
per class): the floors are the flops at these rates on every core. Prints a
Markdown table of medians over the rounds, in ms per meta-iteration.
"""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CONFIGURATIONS = {  # name: (meta-batch, inner steps)
    "Finn et al. 2017 (meta-batch 32, 1 step)": (32, 1),
    "MAML++ (meta-batch 8, 5 steps)": (8, 5),
}
TASK = ["--ways", "5", "--shots", "1", "--queries", "1"]


def last_line_figures(command, **kwargs):
    """Runs a benchmark script and returns the `name=value` figures of its last line."""
    completed = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if completed.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{completed.stderr[-2000:]}")
    return {name: float(value) for name, value in re.findall(r"(\w+)=([\d.]+)", completed.stdout.splitlines()[-1])}


def programs(learn2learn_python):
    """{column: command prefix} of the programs timed."""
    tfmeta = [sys.executable, str(HERE / "maml_throughput.py"), "--intra-op-threads", "1", "--inference"]
    columns = {"tfmeta, per-query": tfmeta + ["per-query"], "tfmeta, transductive": tfmeta + ["transductive"]}
    if learn2learn_python:
        learn2learn = [learn2learn_python, str(HERE / "learn2learn_maml.py")]
        columns["learn2learn, PyTorch's threads"] = learn2learn
        columns["learn2learn, 1 thread"] = learn2learn + ["--threads", "1"]
    return columns


def pinned_to_first_core():
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learn2learn-python", help="a Python interpreter with PyTorch and learn2learn "
                                                     "(default: learn2learn is not run)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=30, help="timed meta-iterations per run")
    args = parser.parse_args(argv)
    columns = programs(args.learn2learn_python)
    times = {(name, column): [] for name in CONFIGURATIONS for column in columns}
    for round_ in range(args.rounds):
        for name, (meta_batch, steps) in CONFIGURATIONS.items():
            for column, command in columns.items():
                figures = last_line_figures(command + TASK + ["--meta-batch", str(meta_batch), "--inner-steps",
                                                              str(steps), "--iterations", str(args.iterations)])
                times[name, column].append(figures["ms_per_iter"])
                print(f"round {round_ + 1}/{args.rounds}, {name}, {column}: {figures['ms_per_iter']:.0f} ms",
                      flush=True)
    conv_gflops = {images: last_line_figures([sys.executable, str(HERE / "conv_speed.py"), "--queries",
                                              str(images // 5), "--intra-op-threads", "1"],
                                             preexec_fn=pinned_to_first_core)["conv_gflops"]
                   for images in (5, 75)}
    cores = len(os.sched_getaffinity(0))
    print(f"\nMedians of {args.rounds} rounds, ms per meta-iteration. Convolutions on one core (pinned): "
          f"{conv_gflops[5]:.1f} GFLOP/s on 5 images, {conv_gflops[75]:.1f} on 75; {cores} cores.\n")
    learn2learn_columns = [column for column in columns if column.startswith("learn2learn")]
    header = ["configuration", *columns, "per-query flops", *(f"floor at the {images}-image rate"
                                                             for images in conv_gflops)]
    if learn2learn_columns:
        header.append("tfmeta per-query / fastest learn2learn")
    print("| " + " | ".join(header) + " |\n|" + " --- |" * len(header))
    for name, (meta_batch, steps) in CONFIGURATIONS.items():
        gflops = last_line_figures([sys.executable, str(HERE / "maml_flops.py"), *TASK, "--meta-batch",
                                    str(meta_batch), "--inner-steps", str(steps)])["gflops_per_iter"]
        medians = {column: float(np.median(times[name, column])) for column in columns}
        row = [name, *(f"{medians[column]:.0f}" for column in columns), f"{gflops:.1f} GFLOP",
               *(f"{1000 * gflops / (rate * cores):.0f}" for rate in conv_gflops.values())]
        if learn2learn_columns:
            fastest = min(medians[column] for column in learn2learn_columns)
            row.append(f"{medians['tfmeta, per-query'] / fastest:.2f}")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
