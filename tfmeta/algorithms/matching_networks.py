"""Matching Networks (Vinyals et al. 2016), with cosine attention over the support labels."""

import keras
import tensorflow as tf

from tfmeta.algorithms.metric_learner import MetricLearner


def cosine_similarity(query, support):
    """Cosine of every query with every support embedding: `[..., queries, examples]`.

    The *embeddings* are L2-normalised, then multiplied. (The source
    tutorial normalised the similarity matrix instead, which is not a cosine.)
    """
    return tf.einsum("...qd,...sd->...qs", tf.math.l2_normalize(query, -1),
                     tf.math.l2_normalize(support, -1))


def matching_log_probabilities(similarity, support_y, ways):
    """log P(y = c | x̂, S) with P = Σ_i a(x̂, x_i) onehot(y_i), a = softmax over the support.

    Computed as a log-sum-exp of the attention log-weights of each class's
    support examples, which stays finite where attention weights underflow.

    Args:
        similarity: attention logits `[..., queries, examples]`.
        support_y: int labels `[..., examples]` in `[0, ways)`, each class present.
        ways: number of classes.

    Returns:
        Log-probabilities `[..., queries, ways]`; they exponentiate to a
        distribution over the episode's labels.
    """
    log_attention = tf.nn.log_softmax(similarity, axis=-1)[..., :, :, tf.newaxis]
    in_class = tf.one_hot(support_y, ways, on_value=True, off_value=False, dtype=tf.bool)
    masked = tf.where(in_class[..., tf.newaxis, :, :], log_attention,
                      tf.constant(-float("inf"), log_attention.dtype))
    return tf.reduce_logsumexp(masked, axis=-2)


@keras.saving.register_keras_serializable(package="tfmeta")
class MatchingNetwork(MetricLearner):
    """Attends over the support set with a softmax of cosine similarities.

    The prediction for a query x̂ is `Σ_i a(x̂, x_i) onehot(y_i)` with
    `a = softmax_i(temperature * cos(f(x̂), g(x_i)))`: a distribution over the
    episode's labels, trained with the log-likelihood of the query labels.
    `call` returns its logarithm.

    Full context embeddings (`fce=True`, the paper's appendix): g is a
    bidirectional LSTM over the embedded support set, summed with its input;
    f is an LSTM that reads the support set by attention for `fce_steps`
    steps, its hidden state carrying the attention read-out (`h + r`, summed,
    as in common reimplementations; the paper writes a concatenation). With
    FCE off, predictions do not depend on the order of the support set; with
    it on, they do (the support LSTM reads the examples in order).

    Args:
        embedding: a built Keras model mapping an example to a vector, e.g.
            `tfmeta.models.conv4_embedding()`.
        fce: use full context embeddings.
        fce_steps: processing steps K of the query's attention LSTM.
        temperature: multiplies the cosines before the softmax (1.0 in the paper).
        learn_temperature: learn the temperature.

    Reference:
        Vinyals, Blundell, Lillicrap, Kavukcuoglu, Wierstra. Matching Networks
        for One Shot Learning. NeurIPS 2016.

    Example:
        >>> matching = MatchingNetwork(tfmeta.models.conv4_embedding(), fce=True)
        >>> matching.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> matching.fit(tfmeta.data.episodes(train, 5, 1, 15, seed=0, meta_batch_size=32),
        ...              steps_per_epoch=100, epochs=10)
    """

    def __init__(self, embedding, fce=False, fce_steps=5, temperature=1.0, learn_temperature=False,
                 **kwargs):
        super().__init__(embedding, **kwargs)
        if isinstance(fce_steps, bool) or not isinstance(fce_steps, int) or fce_steps < 1:
            raise ValueError(f"`fce_steps` must be a positive integer; received fce_steps={fce_steps!r}.")
        self.fce = bool(fce)
        self.fce_steps = fce_steps
        self.add_temperature(temperature, learn_temperature)
        if self.fce:
            size = self.embedding_size
            self.support_lstm = keras.layers.Bidirectional(
                keras.layers.LSTM(size, return_sequences=True), merge_mode="sum", name="support_lstm")
            self.support_lstm.build((None, None, size))
            self.query_cell = keras.layers.LSTMCell(size, name="query_lstm")
            self.query_cell.build((None, size))

    def _contextual_support(self, support, training):
        # g(x_i, S) = g'(x_i) + forward and backward LSTM states over the support set.
        return support + self.support_lstm(support, training=training)

    def _contextual_query(self, query, support, training):
        # f(x̂, S): K steps of an LSTM whose state reads the support set by attention.
        tasks, queries = tf.shape(query)[0], tf.shape(query)[1]
        flat_query = tf.reshape(query, [-1, self.embedding_size])
        h_hat = tf.zeros_like(flat_query)
        cell_state = tf.zeros_like(flat_query)
        for _ in range(self.fce_steps):
            h = tf.reshape(h_hat + flat_query, [tasks, queries, -1])
            attention = tf.nn.softmax(tf.einsum("tqd,tsd->tqs", h, support), axis=-1)
            readout = tf.einsum("tqs,tsd->tqd", attention, support)
            state = tf.reshape(h + readout, [-1, self.embedding_size])
            h_hat, (_, cell_state) = self.query_cell(flat_query, [state, cell_state], training=training)
        return tf.reshape(h_hat + flat_query, [tasks, queries, -1])

    def classify(self, support, support_y, query, ways, training):
        if self.fce:
            support = self._contextual_support(support, training)
            query = self._contextual_query(query, support, training)
        similarity = tf.cast(self.temperature, support.dtype) * cosine_similarity(query, support)
        return matching_log_probabilities(similarity, support_y, ways)

    def get_config(self):
        return {
            **super().get_config(),
            "fce": self.fce,
            "fce_steps": self.fce_steps,
            **self.temperature_config(),
        }
