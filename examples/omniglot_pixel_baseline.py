"""Raw-pixel nearest neighbour on Omniglot episodes: the floor for every learner.

    python examples/omniglot_pixel_baseline.py

Omniglot is read from where `tfmeta.data.locations` says (the repository's data/omniglot in a clone).
Prints a progress bar, then the mean query accuracy with its 95% interval over
fixed, seeded evaluation episodes drawn from held-out classes.
"""

import argparse
import functools
import json
import pathlib
import time

import tfmeta
from tfmeta.baselines import METRICS, pixel_nearest_neighbour
from tfmeta.data.locations import DATA_DIR_HELP
from tfmeta.evaluation import episode_accuracies, mean_confidence_interval
from tfmeta.experiments.reporting import command_line


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    parser.add_argument("--split", default="vinyals-test", choices=tfmeta.data.OMNIGLOT_SPLITS,
                        help="classes to draw episodes from (default: %(default)s)")
    parser.add_argument("--ways", type=int, default=5, help="classes per episode")
    parser.add_argument("--shots", type=int, default=1, help="support examples per class")
    parser.add_argument("--queries", type=int, default=15, help="query examples per class")
    parser.add_argument("--episodes", type=int, default=1000, help="evaluation episodes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation episodes")
    parser.add_argument("--metric", choices=METRICS, default="cosine",
                        help="similarity of raw pixels: cosine (Vinyals et al.'s baseline, the default) or euclidean")
    parser.add_argument("--output", help="also write the result to this JSON file (as results/ holds)")
    args = parser.parse_args(argv)

    start = time.time()
    data = tfmeta.data.load_omniglot(args.split, args.data_dir)
    print(f"Omniglot {args.split}: {data} (read in {time.time() - start:.1f} s)")
    tasks = tfmeta.data.evaluation_episodes(
        data, args.ways, args.shots, args.queries, args.episodes, seed=args.seed,
        meta_batch_size=tfmeta.data.fitting_meta_batch_size(args.episodes),
    )
    accuracies = episode_accuracies(functools.partial(pixel_nearest_neighbour, metric=args.metric), tasks,
                                    args.episodes)
    mean, half_width = mean_confidence_interval(accuracies)
    if args.output:
        record = {"algorithm": f"raw-pixel nearest neighbour ({args.metric})", "dataset": "omniglot", "split": args.split,
                  "ways": args.ways, "shots": args.shots, "accuracy": mean, "ci95": half_width,
                  "test_episodes": len(accuracies), "iterations": 0, "command": command_line()}
        pathlib.Path(args.output).write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"pixel nearest neighbour ({args.metric}), {args.ways}-way {args.shots}-shot, {args.split}, "
        f"{len(accuracies)} episodes: accuracy {100 * mean:.2f} ± {100 * half_width:.2f}% "
        f"({time.time() - start:.1f} s)"
    )


if __name__ == "__main__":
    main()
