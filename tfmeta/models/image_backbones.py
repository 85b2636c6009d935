"""Backbones for colour images (miniImageNet-style CNNs, ResNet-12) and the preprocessing that travels with them."""

import functools

import keras
import numpy as np
import tensorflow as tf

from tfmeta.layers import MetaBatchNormalization
from tfmeta.models.backbones import _conv_blocks

PREPROCESSING_LAYER = "pixel_normalization"


def miniimagenet_cnn(ways, input_shape=(84, 84, 3), filters=32, name="miniimagenet_cnn"):
    """The 4-block CNN of MAML's miniImageNet experiments, a classifier of `ways` logits.

    4 x [3x3 convolution with `filters` channels, batch normalization
    (`MetaBatchNormalization`, exact under second-order gradients), ReLU,
    2x2 max-pooling], flattened (84 -> 42 -> 21 -> 10 -> 5: 5 * 5 * 32 = 800
    features on 84x84 images), then a linear head. Finn et al. used 32
    filters to reduce overfitting; `tfmeta.models.conv4_embedding(input_shape,
    filters=64)` is the same stack with 64 filters as the metric learners'
    embedding.

    Reference:
        Finn, Abbeel, Levine. Model-Agnostic Meta-Learning for Fast Adaptation
        of Deep Networks. ICML 2017, section 5.2.

    Example:
        >>> maml = tfmeta.MAML(miniimagenet_cnn(ways=5), inner_lr=0.01, inner_steps=5)
    """
    if isinstance(ways, bool) or not isinstance(ways, int) or ways < 1:
        raise ValueError(f"`ways` must be a positive integer; received ways={ways!r}.")
    inputs = keras.Input(shape=input_shape, name="images")
    x = _conv_blocks(inputs, filters, "max", MetaBatchNormalization)
    outputs = keras.layers.Dense(ways, name="logits")(keras.layers.Flatten(name="flatten")(x))
    return keras.Model(inputs, outputs, name=name)


RESNET12_WIDTHS = (64, 160, 320, 640)


def resnet12_embedding(input_shape=(84, 84, 3), widths=RESNET12_WIDTHS, global_pool=False, name="resnet12"):
    """ResNet-12, the embedding of most recent few-shot papers.

    4 residual blocks of `widths` channels; each is 3 x [3x3 convolution,
    batch normalization, LeakyReLU(0.1)] (no activation after the third
    normalization) plus a shortcut of a 1x1 convolution and batch
    normalization, summed, LeakyReLU(0.1), then 2x2 max-pooling. The
    features are flattened (Lee et al.: 5 * 5 * 640 = 16,000 on 84x84
    images) or averaged over positions with `global_pool=True` (640).
    Keras's BatchNormalization (moving statistics at inference, momentum
    0.9 as PyTorch's default): for metric learners, which need only first
    order. DropBlock, which Lee et al. add in training, is left out.

    Reference:
        Lee, Maji, Ravichandran, Soatto. Meta-Learning with Differentiable
        Convex Optimization. CVPR 2019 (MetaOptNet); Oreshkin, Rodriguez,
        Lacoste. TADAM. NeurIPS 2018.

    Example:
        >>> protonet = tfmeta.PrototypicalNetwork(resnet12_embedding((84, 84, 3)))
    """
    if len(widths) < 1 or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
        raise ValueError(f"`widths` must be positive integers, one per block; received widths={widths!r}.")
    normalization = functools.partial(keras.layers.BatchNormalization, momentum=0.9,
                                      synchronized=tf.distribute.has_strategy())
    inputs = keras.Input(shape=input_shape, name="images")
    x = inputs
    for block, width in enumerate(widths):
        shortcut = keras.layers.Conv2D(width, 1, use_bias=False, name=f"block{block}_shortcut_conv")(x)
        shortcut = normalization(name=f"block{block}_shortcut_norm")(shortcut)
        for layer in range(3):
            # No bias: the normalization right after removes any constant.
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"block{block}_conv{layer}")(x)
            x = normalization(name=f"block{block}_norm{layer}")(x)
            if layer < 2:
                x = keras.layers.LeakyReLU(0.1, name=f"block{block}_relu{layer}")(x)
        x = keras.layers.Add(name=f"block{block}_add")([x, shortcut])
        x = keras.layers.LeakyReLU(0.1, name=f"block{block}_relu")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    pool = keras.layers.GlobalAveragePooling2D if global_pool else keras.layers.Flatten
    return keras.Model(inputs, pool(name="features")(x), name=name)


def pixel_statistics(images, chunk=256):
    """Per-channel mean and standard deviation of uint8 images `[N, H, W, C]`, on the [0, 1] scale.

    Over every pixel, in float64 sums over `chunk` images at a time, so
    that no float copy of the whole dataset is made.
    """
    images = np.asarray(images)
    channels = images.shape[-1]
    total, squares = np.zeros(channels), np.zeros(channels)
    for begin in range(0, len(images), chunk):
        pixels = images[begin:begin + chunk].reshape(-1, channels).astype(np.float64)
        total += pixels.sum(axis=0)
        squares += np.square(pixels).sum(axis=0)
    count = images.size // channels
    mean = total / count
    return mean / 255.0, np.sqrt(np.maximum(squares / count - np.square(mean), 0.0)) / 255.0


def with_pixel_normalization(backbone, mean, std):
    """`backbone` behind a per-channel normalization `(x - mean) / std` of its float inputs in [0, 1].

    The normalization is a Keras `Normalization` layer named
    `PREPROCESSING_LAYER` inside the returned model, so it is saved with
    it (`get_config` holds the mean and variance), applied in every call,
    and part of an exported SavedModel: clients send pixels in [0, 1] and
    never re-implement it. Its statistics are constants, not weights, so
    MAML does not adapt them.

    Args:
        backbone: a Keras model on images `[batch, H, W, C]`.
        mean, std: `C` values each, e.g. `pixel_statistics(train.images)`.

    Example:
        >>> mean, std = pixel_statistics(train.images)
        >>> embedding = with_pixel_normalization(resnet12_embedding((84, 84, 3)), mean, std)
    """
    channels = backbone.input_shape[-1]
    mean, std = (np.asarray(v, np.float64).reshape(-1) for v in (mean, std))
    if mean.shape != (channels,) or std.shape != (channels,) or not np.all(std > 0):
        raise ValueError(f"`mean` and `std` must hold one value per channel ({channels}), std positive; received "
                         f"mean={mean.tolist()}, std={std.tolist()}.")
    inputs = keras.Input(shape=backbone.input_shape[1:], name="pixels")
    normalized = keras.layers.Normalization(mean=mean.tolist(), variance=(std ** 2).tolist(),
                                            name=PREPROCESSING_LAYER)(inputs)
    return keras.Model(inputs, backbone(normalized), name=backbone.name)


def pixel_normalization_record(backbone):
    """`{"mean": [...], "std": [...]}` of a backbone's `with_pixel_normalization` layer, or None."""
    for layer in backbone.layers:
        if layer.name == PREPROCESSING_LAYER:
            config = layer.get_config()
            return {"mean": [float(v) for v in np.ravel(config["mean"])],
                    "std": [float(v) for v in np.sqrt(np.ravel(config["variance"]))]}
    return None
