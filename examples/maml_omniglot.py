"""MAML on N-way K-shot Omniglot (Finn et al. 2017, section 5.2).

    python examples/maml_omniglot.py --ways 5 --shots 1

Meta-trains Finn's CNN on the Vinyals training classes (rotations as extra
classes) with Keras progress bars and a validation score per epoch, then
prints the query accuracy ± 95% interval over fixed, seeded test episodes.
The same as `tfmeta train --algorithm maml ...`; every flag: --help.
"""

import sys

from tfmeta.experiments import parse_train_config, train


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    return train(parse_train_config(["--algorithm", "maml", *argv], prog="examples/maml_omniglot.py"))


if __name__ == "__main__":
    main()
