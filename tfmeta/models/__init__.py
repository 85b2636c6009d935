"""Backbone and embedding networks."""

from tfmeta.models.backbones import conv4_embedding, dense_embedding, omniglot_cnn, sinusoid_mlp
from tfmeta.models.tutorial import tutorial_cnn

__all__ = ["conv4_embedding", "dense_embedding", "omniglot_cnn", "sinusoid_mlp", "tutorial_cnn"]
