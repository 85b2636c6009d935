"""Text embeddings: raw strings in, vectors out, tokenization inside the model."""

import keras
import numpy as np
import tensorflow as tf

from tfmeta.models.tokenization import text_vectorization


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; received {name}={value!r}.")


def _checked_training_texts(training_texts):
    training_texts = np.asarray(training_texts, dtype=object)
    if training_texts.ndim != 1 or training_texts.size == 0:
        raise ValueError("`training_texts` must be a non-empty sequence of strings (the texts the vocabulary is "
                         f"learned from); received shape {training_texts.shape}.")
    return training_texts


def text_conv_embedding(training_texts, vocabulary_size=20000, sequence_length=48, embedding_dim=64, filters=128,
                        kernel_size=3, blocks=2, output_dim=128, dropout=0.1, tokenize="auto",
                        name="text_conv_embedding"):
    """A 1-D convolutional text embedding whose input is a batch of raw strings `[batch]`.

    `keras.layers.TextVectorization` (lower case, punctuation stripped,
    split as `tokenize` says) is adapted on `training_texts` here, so its
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
        tokenize: `"words"` (split at whitespace), `"characters"` (words,
            and the character unigrams and bigrams of scripts written without
            spaces: Chinese, Japanese, Thai; see
            `tfmeta.models.tokenization.split_characters`) or `"auto"` (chosen
            from `training_texts`: characters when they hold such scripts).

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
    training_texts = _checked_training_texts(training_texts)
    vectorize = text_vectorization(training_texts, tokenize, max_tokens=vocabulary_size,
                                   output_sequence_length=sequence_length, name="tokens")

    texts = keras.Input(shape=(), dtype="string", name="texts")
    tokens = KnownWords(unknown_up_to=1, name="known_words")(vectorize(texts))
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


PROJECTION_STDDEV = 0.02


@keras.saving.register_keras_serializable(package="tfmeta")
class KnownWords(keras.layers.Layer):
    """Passes a batch of tokenized texts through; outside training, refuses one in which a text has no word of the
    vocabulary, as blank text is refused: its embedding would say nothing about it (a zero TF-IDF vector, or only
    the out-of-vocabulary token), so its prediction would be confident-looking nonsense. Words are split on
    whitespace, so a script written without spaces (Chinese, Japanese, Thai) is one unknown word.

    Args:
        unknown_up_to: values up to this count as no word: 1 for token ids (0 padding, 1 out-of-vocabulary),
            0 for term weights.
    """

    def __init__(self, unknown_up_to, **kwargs):
        super().__init__(**kwargs)
        self.unknown_up_to = unknown_up_to

    def call(self, inputs, training=None):
        if training:  # term dropout may empty a short text; the check is for the texts a model is asked about
            return inputs
        known = tf.reduce_any(inputs > self.unknown_up_to, axis=-1)
        check = tf.debugging.Assert(tf.reduce_all(known), [
            "a text holds no word of the vocabulary of the model (every word unknown; words are split on whitespace, "
            "so a script without spaces such as Chinese is one unknown word): its embedding would say nothing about "
            "it. Texts without a known word:", tf.reduce_sum(tf.cast(~known, tf.int32))])
        with tf.control_dependencies([check]):
            return tf.identity(inputs)

    def get_config(self):
        return {**super().get_config(), "unknown_up_to": self.unknown_up_to}


@keras.saving.register_keras_serializable(package="tfmeta")
class TermReweighting(keras.layers.Layer):
    """Learned term weights and a learned low-rank term similarity on top of L2-normalised TF-IDF vectors.

    Input: TF-IDF vectors `[batch, terms]`. Output: `scale * normalize(
    concat(x * exp(term_log_weights), x @ projection))` with
    `x = normalize(input)`. Weights start at 1 and the projection near 0
    (normal, standard deviation 0.02), so before training the output is
    close to the L2-normalised TF-IDF vector times `scale`: the model starts
    from the TF-IDF baseline's geometry, and meta-training learns what to
    change from there (which words matter, which words mean alike).

    Args:
        projection_dim: features of the learned projection (0: term weights only).
        initial_scale: the starting length of the output vectors (learned):
            Prototypical Networks' logits are minus squared distances, which
            for unit vectors lie in [-4, 0], too flat for a confident softmax.

    Example:
        >>> reweight = TermReweighting(projection_dim=16)
        >>> tuple(reweight(np.eye(3, 100, dtype="float32")).shape)  # 3 TF-IDF vectors of 100 terms
        (3, 116)
    """

    def __init__(self, projection_dim=0, initial_scale=4.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(projection_dim, bool) or not isinstance(projection_dim, (int, np.integer)) or projection_dim < 0:
            raise ValueError("`projection_dim` must be a non-negative integer; received "
                             f"projection_dim={projection_dim!r}.")
        if not initial_scale > 0:
            raise ValueError(f"`initial_scale` must be positive; received initial_scale={initial_scale!r}.")
        self.projection_dim = int(projection_dim)
        self.initial_scale = float(initial_scale)

    def build(self, input_shape):
        terms = input_shape[-1]
        self.term_log_weights = self.add_weight(shape=(terms,), initializer="zeros", name="term_log_weights")
        # Small but not zero: with every projection at 0 the distances' gradient with respect to it is 0 too.
        self.projection = (self.add_weight(shape=(terms, self.projection_dim), name="projection",
                                           initializer=keras.initializers.RandomNormal(stddev=PROJECTION_STDDEV))
                           if self.projection_dim else None)
        self.log_scale = self.add_weight(shape=(), name="log_scale",
                                         initializer=keras.initializers.Constant(np.log(self.initial_scale)))

    def call(self, inputs):
        x = keras.ops.normalize(inputs, axis=-1)
        features = x * keras.ops.exp(self.term_log_weights)
        if self.projection is not None:
            features = keras.ops.concatenate([features, keras.ops.matmul(x, self.projection)], axis=-1)
        return keras.ops.exp(self.log_scale) * keras.ops.normalize(features, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + self.projection_dim)

    def get_config(self):
        return {**super().get_config(), "projection_dim": self.projection_dim, "initial_scale": self.initial_scale}


def text_tfidf_embedding(training_texts, vocabulary_size=20000, projection_dim=0, dropout=0.1, initial_scale=4.0,
                         tokenize="auto", name="text_tfidf_embedding"):
    """A text embedding that starts as TF-IDF and learns term weights (and, optionally, term similarities).

    Raw strings `[batch]` -> `keras.layers.TextVectorization(output_mode=
    "tf_idf")` (the same standardization, splitting, vocabulary and document
    frequencies as `tfmeta.baselines.tfidf_nearest_prototype` adapted on
    the same texts; the out-of-vocabulary count is left out as there) ->
    dropout of terms during training -> `TermReweighting`. Before
    meta-training, cosines between embeddings are the baseline's TF-IDF
    cosines; meta-training learns which words tell classes apart in general
    (a weight per word) and, with `projection_dim`, which words mean alike (a
    low-rank projection), from the training classes' episodes.

    Args:
        training_texts: the meta-training texts (vocabulary and document
            frequencies are learned from them; adapt on training classes only).
        vocabulary_size: the most frequent tokens kept (out-of-vocabulary included).
        projection_dim, initial_scale: of `TermReweighting`.
        dropout: rate at which terms are dropped during training.
        tokenize: `"words"`, `"characters"` or `"auto"`, as for
            `text_conv_embedding` (the baseline's, given the same texts).

    Reference:
        Salton, Buckley. Term-weighting approaches in automatic text
        retrieval. Information Processing & Management, 1988.

    Example:
        >>> train = tfmeta.data.read_labelled_lines("data/debian-packages/train.tsv.gz")
        >>> protonet = tfmeta.PrototypicalNetwork(text_tfidf_embedding(train.texts))
    """
    _check_positive_int("vocabulary_size", vocabulary_size)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must lie in [0, 1); received dropout={dropout!r}.")
    training_texts = _checked_training_texts(training_texts)
    vectorize = text_vectorization(training_texts, tokenize, max_tokens=vocabulary_size, output_mode="tf_idf",
                                   name="tf_idf")

    texts = keras.Input(shape=(), dtype="string", name="texts")
    # Column 0 counts all out-of-vocabulary words as one: unrelated unknown words would look alike.
    terms = KnownWords(unknown_up_to=0, name="known_words")(vectorize(texts)[:, 1:])
    terms = keras.layers.Dropout(dropout, name="term_dropout")(terms)
    reweighted = TermReweighting(projection_dim, initial_scale, name="reweighting")(terms)
    return keras.Model(texts, reweighted, name=name)
