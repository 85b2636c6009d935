"""The backbones of the MAML and Matching Networks papers, as Keras models."""

import keras

from tfmeta.layers import MetaBatchNormalization

POOLINGS = ("stride", "max")


def omniglot_cnn(ways, input_shape=(28, 28, 1), pooling="stride", filters=64, name=None):
    """The 4-block convolutional classifier of MAML's Omniglot experiments.

    Each block is a 3x3 convolution with `filters` channels, batch
    normalization (`MetaBatchNormalization`, exact under second-order
    gradients) and ReLU, downsampling either by the convolution's stride 2
    (`pooling="stride"`, Finn et al.'s Omniglot network, followed by a mean
    over the remaining spatial positions) or by 2x2 max-pooling after a
    stride-1 convolution (`pooling="max"`, the network of Vinyals et al. and
    of Finn et al.'s MiniImagenet runs). A linear head gives `ways` logits.

    Reference:
        Finn, Abbeel, Levine. Model-Agnostic Meta-Learning for Fast Adaptation
        of Deep Networks. ICML 2017, section 5.2.

    Example:
        >>> model = omniglot_cnn(ways=5)
        >>> model.output_shape
        (None, 5)
    """
    if isinstance(ways, bool) or not isinstance(ways, int) or ways < 1:
        raise ValueError(f"`ways` must be a positive integer; received ways={ways!r}.")
    if pooling not in POOLINGS:
        raise ValueError(f"`pooling` must be one of {POOLINGS}; received pooling={pooling!r}.")
    inputs = keras.Input(shape=input_shape, name="images")
    x = inputs
    for block in range(4):
        stride = 2 if pooling == "stride" else 1
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", name=f"conv{block}")(x)
        x = MetaBatchNormalization(name=f"norm{block}")(x)
        x = keras.layers.ReLU(name=f"relu{block}")(x)
        if pooling == "max":
            x = keras.layers.MaxPooling2D(2, padding="valid", name=f"pool{block}")(x)
    if pooling == "stride":
        x = keras.layers.GlobalAveragePooling2D(name="mean_pool")(x)
    else:
        x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(ways, name="logits")(x)
    return keras.Model(inputs, outputs, name=name or f"omniglot_cnn_{pooling}")


def sinusoid_mlp(hidden=(40, 40), name="sinusoid_mlp"):
    """The ReLU MLP of MAML's sinusoid regression: 1 -> 40 -> 40 -> 1.

    Reference:
        Finn, Abbeel, Levine. ICML 2017, section 5.1.
    """
    inputs = keras.Input(shape=(1,), name="x")
    x = inputs
    for i, width in enumerate(hidden):
        x = keras.layers.Dense(width, activation="relu", name=f"hidden{i}")(x)
    outputs = keras.layers.Dense(1, name="y")(x)
    return keras.Model(inputs, outputs, name=name)
