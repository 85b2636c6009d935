"""MAML on sinusoid regression (Finn et al. 2017, section 5.1), with the paper's figure.

    python examples/maml_sinusoid.py --shots 10

Meta-trains the 40-40 ReLU MLP on K-shot sinusoid tasks, prints the query mean
squared error ± 95% interval over 1,000 fixed test tasks after 0, 1 and 10
inner steps, and saves a PNG of one test task: the true function, its K
support points, and the model's fit before and after adaptation.
Needs matplotlib for the figures (`pip install ".[examples]"`).
The same as `tfmeta train --algorithm maml --dataset sinusoid ...`.
"""

import sys

from tfmeta.experiments import parse_train_config, train


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    return train(parse_train_config(["--algorithm", "maml", "--dataset", "sinusoid", *argv], prog="examples/maml_sinusoid.py"))


if __name__ == "__main__":
    main()
