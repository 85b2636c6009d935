"""Keras layers for meta-learning."""

from tfmeta.layers.batch_normalization import MetaBatchNormalization

__all__ = ["MetaBatchNormalization"]
