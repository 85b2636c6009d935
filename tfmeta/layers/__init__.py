"""Keras layers for meta-learning."""

from tfmeta.layers.batch_normalization import MetaBatchNormalization
from tfmeta.layers.normalization import MetaGroupNormalization, MetaLayerNormalization

__all__ = ["MetaBatchNormalization", "MetaGroupNormalization", "MetaLayerNormalization"]
