"""Backbone and embedding networks."""

from tfmeta.models.backbones import conv4_embedding, dense_embedding, omniglot_cnn, sinusoid_mlp

__all__ = ["conv4_embedding", "dense_embedding", "omniglot_cnn", "sinusoid_mlp"]
