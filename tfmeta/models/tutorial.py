"""The convolutional network of the meta-learning tutorial ("深度学习与元学习"), returning logits."""

import numbers

import keras


def tutorial_cnn(num_classes, input_shape=(28, 28, 1), name="tutorial_cnn"):
    """The tutorial's MAML classifier: two convolution + max-pool blocks and two dense layers.

    Conv2D(32, 3x3, ReLU) → 2x2 max-pool → Conv2D(64, 3x3, ReLU) → 2x2
    max-pool → flatten → Dense(128, ReLU) → Dense(`num_classes`), with the
    tutorial's "valid" padding: on 28x28 inputs, 28 → 26 → 13 → 11 → 5, so
    5·5·64 = 1,600 features before the dense layers (224,389 parameters for
    5 classes).

    It returns **logits**, where the tutorial's last layer applied a softmax:
    the softmax moves into the loss
    (`keras.losses.SparseCategoricalCrossentropy(from_logits=True)`, the
    default loss of `tfmeta.MAML`). The probabilities are the same, but the
    loss is then computed as a log-softmax, which stays finite and keeps its
    gradient when a class's probability underflows, instead of the log of a
    probability clipped to 1e-7, whose gradient is zero once clipped. MAML
    differentiates that loss twice (through every inner step), so its
    stability matters all the more. `keras.activations.softmax(logits)` gives
    the probabilities.

    The network has no normalization layers, so it works with second-order
    MAML as it is (`tfmeta.MAML(tutorial_cnn(5))`). It is not the MAML
    paper's Omniglot network: that is `omniglot_cnn` (four convolution blocks
    with batch normalization).

    Args:
        num_classes: number of outputs: the ways of the episodes it will
            classify (a positive integer).
        input_shape: shape of one example, height x width x channels; at
            least 10x10, so that a pixel is left after the second pooling.
        name: the model's name.

    Returns:
        A built functional `keras.Model` mapping images `[batch, *input_shape]`
        to logits `[batch, num_classes]`.

    Reference:
        The tutorial's `MAML(tf.keras.Model)` class; the task setup is that of
        Finn, Abbeel, Levine. Model-Agnostic Meta-Learning for Fast Adaptation
        of Deep Networks. ICML 2017. `docs/tutorial.md` compares the tutorial's
        code with its corrected version.

    Example:
        >>> model = tfmeta.models.tutorial_cnn(num_classes=5)
        >>> model.output_shape
        (None, 5)
        >>> maml = tfmeta.MAML(model, inner_lr=0.4, inner_steps=1)
        >>> maml.compile(optimizer=keras.optimizers.Adam(1e-3))
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"`num_classes` must be a positive integer; received num_classes={num_classes!r}.")
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if (shape is None or len(shape) != 3
            or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in shape)):
        raise ValueError("`input_shape` must be (height, width, channels), three positive integers; received "
                         f"input_shape={input_shape!r}.")
    if min(shape[:2]) < 10:
        raise ValueError("`input_shape` must be at least 10x10: two 3x3 valid convolutions and two 2x2 poolings "
                         f"leave no pixel of a smaller image; received input_shape={input_shape!r}.")
    inputs = keras.Input(shape=tuple(int(d) for d in shape), name="images")
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, activation="relu", name="dense1")(x)
    outputs = keras.layers.Dense(int(num_classes), name="logits")(x)
    return keras.Model(inputs, outputs, name=name)
