"""Meta-training runs as the `tfmeta train` command and the examples run them."""

from tfmeta.data.locations import OmniglotNotFoundError
from tfmeta.experiments.config import (
    ALGORITHMS,
    DATASETS,
    distribution_strategy,
    for_this_worker,
    is_text_dataset,
    parse_train_config,
    train_parser,
)
from tfmeta.experiments.images import is_image_dataset, train_and_evaluate_images
from tfmeta.experiments.omniglot import build_model, train_and_evaluate_omniglot
from tfmeta.experiments.sinusoid import train_and_evaluate_sinusoid
from tfmeta.experiments.text import train_and_evaluate_text


def train(config):
    """Runs a resolved configuration (`parse_train_config`); returns its results.

    Models are built, trained and tested inside the configured
    tf.distribute strategy's scope (`--distribute`).
    """
    strategy = distribution_strategy(config)
    config = for_this_worker(config, strategy)
    with strategy.scope():
        if config.dataset == "sinusoid":
            return train_and_evaluate_sinusoid(config)
        if is_image_dataset(config.dataset):
            return train_and_evaluate_images(config)
        if is_text_dataset(config.dataset):
            return train_and_evaluate_text(config)
        try:
            return train_and_evaluate_omniglot(config)
        except OmniglotNotFoundError as error:
            raise SystemExit(f"tfmeta train: {error}") from None


__all__ = [
    "ALGORITHMS",
    "DATASETS",
    "build_model",
    "parse_train_config",
    "train",
    "train_and_evaluate_images",
    "train_and_evaluate_omniglot",
    "train_and_evaluate_sinusoid",
    "train_and_evaluate_text",
    "train_parser",
]
