"""Text embeddings: raw strings in, vectors out, tokenization inside the model."""

import keras
import numpy as np


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; received {name}={value!r}.")


def text_conv_embedding(training_texts, vocabulary_size=20000, sequence_length=48, embedding_dim=64, filters=128,
                        kernel_size=3, blocks=2, output_dim=128, dropout=0.1, name="text_conv_embedding"):
    """A 1-D convolutional text embedding whose input is a batch of raw strings `[batch]`.

    `keras.layers.TextVectorization` (lower case, punctuation stripped,
    split on whitespace) is adapted on `training_texts` here, so its
    vocabulary is part of the model: saved with it, exported with it, and
    applied to whatever strings the model receives. Tokens are embedded,
    read by `blocks` x [convolution of `kernel_size` tokens with `filters`
    channels, ReLU], max-pooled over the non-padding positions and projected
    linearly to `output_dim` features (not normalised: Matching Networks
    normalise in their cosine, Prototypical Networks use the raw distance).

    Args:
        training_texts: the meta-training texts (strings), whose most
            frequent `vocabulary_size - 2` tokens become the vocabulary
            (index 0 is padding, 1 out-of-vocabulary). Adapt on training
            classes only: the vocabulary is learned data.
        vocabulary_size: tokens kept, padding and out-of-vocabulary included.
        sequence_length: tokens read per text (longer texts are cut).
        embedding_dim, filters, kernel_size, blocks, output_dim: sizes.
        dropout: dropout rate on the token embeddings during training.

    Reference:
        Kim. Convolutional Neural Networks for Sentence Classification.
        EMNLP 2014 (convolutions over word embeddings, max-pooled).

    Example:
        >>> train = tfmeta.data.read_labelled_lines("data/debian-packages/train.tsv.gz")
        >>> protonet = tfmeta.PrototypicalNetwork(text_conv_embedding(train.texts))
    """
    for argument in ("vocabulary_size", "sequence_length", "embedding_dim", "filters", "kernel_size", "blocks",
                     "output_dim"):
        _check_positive_int(argument, locals()[argument])
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must lie in [0, 1); received dropout={dropout!r}.")
    training_texts = np.asarray(training_texts, dtype=object)
    if training_texts.ndim != 1 or training_texts.size == 0:
        raise ValueError("`training_texts` must be a non-empty sequence of strings (the texts the vocabulary is "
                         f"learned from); received shape {training_texts.shape}.")
    vectorize = keras.layers.TextVectorization(max_tokens=vocabulary_size, output_sequence_length=sequence_length,
                                               name="tokens")
    vectorize.adapt(training_texts.astype(str))

    texts = keras.Input(shape=(), dtype="string", name="texts")
    tokens = vectorize(texts)
    x = keras.layers.Embedding(vocabulary_size, embedding_dim, name="token_embedding")(tokens)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    # Zero at padding positions: the convolutions do not read the padding's embedding past a text's end, and,
    # the ReLU features being non-negative, the max over positions is the max over the text's own tokens.
    not_padding = keras.ops.expand_dims(keras.ops.cast(keras.ops.not_equal(tokens, 0), "float32"), -1)
    for block in range(blocks):
        x = x * not_padding
        x = keras.layers.Conv1D(filters, kernel_size, padding="same", activation="relu", name=f"conv{block}")(x)
    x = keras.layers.GlobalMaxPooling1D(name="max_pool")(x * not_padding)
    return keras.Model(texts, keras.layers.Dense(output_dim, name="embedding")(x), name=name)
