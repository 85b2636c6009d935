"""What each of MAML++'s switches adds to MAML on Omniglot, at equal budget.

    python examples/maml_plus_plus_ablation.py --iterations 1000 [--ways 5 --shots 1] [--rows maml cosine-lr ...]

Trains one model per row with the same seed, episodes and number of meta-iterations:

- `maml`: MAML with MAML++'s base settings and none of its switches (5 inner steps at rate 0.1 in training and
  evaluation, meta-batch 8, max-pooling CNN, second order, Adam at a constant 1e-3);
- one row per switch, that base plus the switch alone;
- `maml-plus-plus`: the whole preset (`tfmeta train --maml-plus-plus`).

Each row is a `tfmeta train` run in runs/ablation-maml-plus-plus/ROW; its results.json (tested on the epoch of
best validation accuracy) is copied to results/ablation/maml-plus-plus/ROW.json with the row's flags, and the
script ends with a table of every row recorded there. Rows whose file exists are skipped, so an interrupted
ablation continues where it stopped (`--rerun` trains them again).

Reference: Antoniou, Edwards, Storkey. How to train your MAML. ICLR 2019 (its ablation, Table 1, adds the switches
one after another; here each is added alone to the same base).
"""

import argparse
import json
import pathlib
import sys

from tfmeta.experiments import parse_train_config, train

RESULTS = pathlib.Path("results") / "ablation" / "maml-plus-plus"
RUNS = pathlib.Path("runs") / "ablation-maml-plus-plus"


def row_flags(iterations):
    """`{row: the tfmeta train flags it adds to the base}`, MAML++'s annealing periods scaled to `iterations`."""
    return {
        "maml": [],
        # MAML++ anneals the multi-step loss over the first 10 of 100 epochs.
        "multi-step-loss": ["--multi-step-loss-iterations", str(max(1, iterations // 10))],
        "per-step-bn": ["--per-step-bn"],
        "per-step-bn-statistics": ["--per-step-bn", "--per-step-bn-statistics"],
        "learned-per-step-inner-lr": ["--learn-per-step-inner-lr"],
        # The paper's derivative-order annealing: first order for the first 50 of 150 epochs.
        "first-order-warm-up": ["--first-order-iterations", str(max(1, iterations // 3))],
        "cosine-lr": ["--cosine-lr-to", "1e-5"],
        "maml-plus-plus": ["--maml-plus-plus"],
    }


def base_flags(args):
    """The flags every row shares: the budget, the task, the seed and MAML++'s base settings."""
    return ["--algorithm", "maml", "--ways", str(args.ways), "--shots", str(args.shots),
            "--inner-steps", "5", "--eval-inner-steps", "5", "--inner-lr", "0.1", "--meta-batch", "8",
            "--pooling", "max", "--meta-lr", "1e-3", "--iterations", str(args.iterations),
            "--iterations-per-epoch", str(args.iterations_per_epoch), "--val-episodes", str(args.val_episodes),
            "--test-episodes", str(args.test_episodes), "--seed", str(args.seed)]


def row_config(args, row):
    """The resolved `tfmeta train` configuration of one row."""
    flags = [*base_flags(args), *row_flags(args.iterations)[row], "--output-dir", str(RUNS / row)]
    return parse_train_config(flags, prog="examples/maml_plus_plus_ablation.py"), flags


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000, help="meta-iterations per row (default: 1000)")
    parser.add_argument("--iterations-per-epoch", type=int, default=250,
                        help="meta-iterations between validations (default: 250)")
    parser.add_argument("--val-episodes", type=int, default=200, help="validation episodes (default: 200)")
    parser.add_argument("--test-episodes", type=int, default=1000, help="test episodes (default: 1000)")
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", nargs="+", metavar="ROW", help="the rows to train (default: all)")
    parser.add_argument("--rerun", action="store_true", help="train rows whose results file exists again")
    args = parser.parse_args(argv)
    known = list(row_flags(args.iterations))
    unknown = sorted(set(args.rows or []) - set(known))
    if unknown:
        parser.error(f"unknown rows {unknown}; the rows are {known}")
    args.rows = args.rows or known
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for number, row in enumerate(args.rows, 1):
        path = RESULTS / f"{row}.json"
        if path.exists() and not args.rerun:
            print(f"[{number}/{len(args.rows)}] {row}: kept {path}")
            continue
        print(f"[{number}/{len(args.rows)}] {row}: training", flush=True)
        config, flags = row_config(args, row)
        train(config)
        record = json.loads((RUNS / row / "results.json").read_text())
        record["ablation"] = {"row": row, "flags": row_flags(args.iterations)[row],
                              "command": "python -m tfmeta train " + " ".join(flags)}
        path.write_text(json.dumps(record, indent=1) + "\n")
    summary = {path.stem: json.loads(path.read_text()) for path in sorted(RESULTS.glob("*.json"))}
    print("\nrow | test accuracy | best validation | minutes")
    for row, record in summary.items():
        print(f"{row} | {100 * record['accuracy']:.2f} ± {100 * record['ci95']:.2f}% | "
              f"{100 * max(record['curve']['val_accuracy']):.2f}% | {record['train_seconds'] / 60:.0f}")


if __name__ == "__main__":
    main()
