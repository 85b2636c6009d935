"""Keras layers for meta-learning."""

from tfmeta.layers.batch_normalization import MetaBatchNormalization, inner_step, statistics_of_first
from tfmeta.layers.normalization import MetaGroupNormalization, MetaLayerNormalization

__all__ = ["MetaBatchNormalization", "MetaGroupNormalization", "MetaLayerNormalization", "inner_step",
           "statistics_of_first"]
