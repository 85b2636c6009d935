"""Keras layers for meta-learning."""

from tfmeta.layers.batch_normalization import MetaBatchNormalization, inner_step
from tfmeta.layers.normalization import MetaGroupNormalization, MetaLayerNormalization

__all__ = ["MetaBatchNormalization", "MetaGroupNormalization", "MetaLayerNormalization", "inner_step"]
