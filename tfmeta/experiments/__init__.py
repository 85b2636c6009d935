"""Meta-training runs as the `tfmeta train` command and the examples run them."""

from tfmeta.experiments.config import ALGORITHMS, DATASETS, parse_train_config, train_parser
from tfmeta.experiments.omniglot import build_model, train_and_evaluate_omniglot
from tfmeta.experiments.sinusoid import train_and_evaluate_sinusoid


def train(config):
    """Runs a resolved configuration (`parse_train_config`); returns its results."""
    if config.dataset == "sinusoid":
        return train_and_evaluate_sinusoid(config)
    return train_and_evaluate_omniglot(config)


__all__ = [
    "ALGORITHMS",
    "DATASETS",
    "build_model",
    "parse_train_config",
    "train",
    "train_and_evaluate_omniglot",
    "train_and_evaluate_sinusoid",
    "train_parser",
]
