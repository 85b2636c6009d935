"""Backbone networks."""

from tfmeta.models.backbones import omniglot_cnn, sinusoid_mlp

__all__ = ["omniglot_cnn", "sinusoid_mlp"]
