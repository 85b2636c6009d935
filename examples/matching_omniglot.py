"""Matching Networks on N-way K-shot Omniglot (Vinyals et al. 2016).

    python examples/matching_omniglot.py --ways 5 --shots 1 [--fce]

Trains the conv4 embedding (and, with --fce, the full-context LSTMs) on episodes
of the Vinyals training classes, then prints the query accuracy ± 95% interval
over fixed, seeded test episodes. The same as `tfmeta train --algorithm matching ...`.
"""

import sys

from tfmeta.experiments import parse_train_config, train


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    return train(parse_train_config(["--algorithm", "matching", *argv], prog="examples/matching_omniglot.py"))


if __name__ == "__main__":
    main()
