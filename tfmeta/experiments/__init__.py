"""Meta-training runs as the `tfmeta train` command and the examples run them.

The names below are imported on first use: the command line reads its flags from `config` before it loads
TensorFlow.
"""

import importlib

_NAMES = {
    "ALGORITHMS": "config", "DATASETS": "config", "distribution_strategy": "config", "for_this_worker": "config",
    "is_text_dataset": "config", "parse_train_config": "config", "train_parser": "config",
    "is_image_dataset": "images", "train_and_evaluate_images": "images",
    "build_model": "omniglot", "train_and_evaluate_omniglot": "omniglot",
    "train_and_evaluate_sinusoid": "sinusoid", "train_and_evaluate_text": "text",
}


def __getattr__(name):
    if name not in _NAMES:
        raise AttributeError(f"module 'tfmeta.experiments' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tfmeta.experiments.{_NAMES[name]}"), name)
    globals()[name] = value
    return value


def train(config):
    """Runs a resolved configuration (`parse_train_config`); returns its results.

    Models are built, trained and tested inside the configured
    tf.distribute strategy's scope (`--distribute`).
    """
    from tfmeta.data.locations import OmniglotNotFoundError
    from tfmeta.experiments.config import distribution_strategy, for_this_worker, is_text_dataset
    from tfmeta.experiments.images import is_image_dataset, train_and_evaluate_images
    from tfmeta.experiments.omniglot import train_and_evaluate_omniglot
    from tfmeta.experiments.sinusoid import train_and_evaluate_sinusoid
    from tfmeta.experiments.text import train_and_evaluate_text

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


__all__ = sorted(["train", *_NAMES])
