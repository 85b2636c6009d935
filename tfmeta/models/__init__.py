"""Backbone and embedding networks."""

from tfmeta.models.backbones import conv4_embedding, dense_embedding, omniglot_cnn, sinusoid_mlp
from tfmeta.models.image_backbones import (miniimagenet_cnn, pixel_normalization_record, pixel_statistics,
                                           resnet12_embedding, with_pixel_normalization)
from tfmeta.models.pretrained_text import pretrained_text_embedding
from tfmeta.models.text import text_conv_embedding, text_tfidf_embedding
from tfmeta.models.tutorial import tutorial_cnn

__all__ = ["conv4_embedding", "dense_embedding", "miniimagenet_cnn", "omniglot_cnn", "pixel_normalization_record",
           "pixel_statistics", "pretrained_text_embedding", "resnet12_embedding", "sinusoid_mlp", "text_conv_embedding", "text_tfidf_embedding",
           "tutorial_cnn", "with_pixel_normalization"]
