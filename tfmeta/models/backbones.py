"""The backbones of the MAML and Matching Networks papers, as Keras models."""

import functools

import keras
import tensorflow as tf

from tfmeta.layers import MetaBatchNormalization

POOLINGS = ("stride", "max")


def omniglot_cnn(ways, input_shape=(28, 28, 1), pooling="stride", filters=64, name=None, norm_steps=None,
                 per_step_statistics=False):
    """The 4-block convolutional classifier of MAML's Omniglot experiments.

    Each block is a 3x3 convolution with `filters` channels, batch
    normalization (`MetaBatchNormalization`, exact under second-order
    gradients) and ReLU, downsampling either by the convolution's stride 2
    (`pooling="stride"`, Finn et al.'s Omniglot network, followed by a mean
    over the remaining spatial positions) or by 2x2 max-pooling after a
    stride-1 convolution (`pooling="max"`, the network of Vinyals et al. and
    of Finn et al.'s MiniImagenet runs). A linear head gives `ways` logits.

    `norm_steps=N` gives the normalization layers per-step weights for N
    inner steps, and `per_step_statistics=True` per-step moving statistics
    too (MAML++; see `MetaBatchNormalization`).

    Reference:
        Finn, Abbeel, Levine. Model-Agnostic Meta-Learning for Fast Adaptation
        of Deep Networks. ICML 2017, section 5.2. Antoniou, Edwards, Storkey.
        How to train your MAML. ICLR 2019.

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
    normalization = functools.partial(MetaBatchNormalization, steps=norm_steps,
                                      per_step_statistics=per_step_statistics)
    x = _conv_blocks(inputs, filters, pooling, normalization)
    if pooling == "stride":
        x = keras.layers.GlobalAveragePooling2D(name="mean_pool")(x)
    else:
        x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(ways, name="logits")(x)
    return keras.Model(inputs, outputs, name=name or f"omniglot_cnn_{pooling}")


def _conv_blocks(x, filters, pooling, normalization):
    """4 x [3x3 conv, normalization, ReLU], downsampling by stride 2 or 2x2 max-pool.

    The convolutions have no bias: the normalization subtracts the batch mean
    right after, so a bias would have no effect on any output, and dropping it
    saves its ops in every inner step and its second derivatives.
    """
    for block in range(4):
        stride = 2 if pooling == "stride" else 1
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                                name=f"conv{block}")(x)
        x = normalization(name=f"norm{block}")(x)
        x = keras.layers.ReLU(name=f"relu{block}")(x)
        if pooling == "max":
            x = keras.layers.MaxPooling2D(2, name=f"pool{block}")(x)
    return x


def conv4_embedding(input_shape=(28, 28, 1), filters=64, name="conv4_embedding"):
    """The embedding of Matching and Prototypical Networks: 64-d on 28x28 Omniglot.

    4 x [3x3 convolution with `filters` channels, batch normalization, ReLU,
    2x2 max-pooling], flattened: 28 -> 14 -> 7 -> 3 -> 1, so `filters`
    features. Uses Keras's own BatchNormalization (moving statistics at
    inference): metric learners need only first-order gradients.

    Reference:
        Vinyals et al. 2016; Snell, Swersky, Zemel. Prototypical Networks for
        Few-shot Learning. NeurIPS 2017.
    """
    inputs = keras.Input(shape=input_shape, name="images")
    # Momentum 0.9 as PyTorch's default in the original implementations; Keras's 0.99
    # leaves the moving statistics unready after a short training. Built inside a
    # tf.distribute strategy's scope, batch statistics are synchronised over the
    # replicas, so a meta-batch is normalised as on one device (the fused
    # single-device kernel is faster otherwise).
    normalization = functools.partial(keras.layers.BatchNormalization, momentum=0.9,
                                      synchronized=tf.distribute.has_strategy())
    x = _conv_blocks(inputs, filters, "max", normalization)
    return keras.Model(inputs, keras.layers.Flatten(name="flatten")(x), name=name)


def dense_embedding(input_dim, units=(128, 64), name="dense_embedding"):
    """An MLP embedding for vector inputs (text embeddings, tabular features).

    ReLU hidden layers and a linear last layer of `units[-1]` features: the
    source tutorial's `EmbeddingFunction`, for episodes whose examples are
    vectors of length `input_dim`.
    """
    if isinstance(input_dim, bool) or not isinstance(input_dim, int) or input_dim < 1:
        raise ValueError(f"`input_dim` must be a positive integer; received input_dim={input_dim!r}.")
    inputs = keras.Input(shape=(input_dim,), name="features")
    x = inputs
    for i, width in enumerate(units[:-1]):
        x = keras.layers.Dense(width, activation="relu", name=f"hidden{i}")(x)
    return keras.Model(inputs, keras.layers.Dense(units[-1], name="embedding")(x), name=name)


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
