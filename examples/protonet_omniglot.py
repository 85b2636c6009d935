"""Prototypical Networks on N-way K-shot Omniglot (Snell et al. 2017).

    python examples/protonet_omniglot.py --ways 5 --shots 1

Trains the conv4 embedding on episodes of the Vinyals training classes — by
default with Snell et al.'s "higher way" training episodes (60 classes, 5
queries each) — then prints the query accuracy ± 95% interval over fixed,
seeded test episodes. The same as `tfmeta train --algorithm protonet ...`.
"""

import sys

from tfmeta.experiments import parse_train_config, train


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    return train(parse_train_config(["--algorithm", "protonet", *argv], prog="examples/protonet_omniglot.py"))


if __name__ == "__main__":
    main()
