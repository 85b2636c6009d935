"""Baselines without meta-learning: what a learned embedding has to beat."""

import tensorflow as tf

from tfmeta.algorithms.prototypical_networks import prototypes
from tfmeta.models.tokenization import text_vectorization

METRICS = ("cosine", "euclidean")


def _check_metric(metric):
    if metric not in METRICS:
        raise ValueError(f"`metric` must be one of {METRICS}; received metric={metric!r}.")


def _scores(query, support, metric):
    """Similarity of every query with every support vector `[tasks, queries, support]`; the largest is nearest."""
    if metric == "cosine":
        return tf.einsum("tqd,tsd->tqs", tf.math.l2_normalize(query, -1), tf.math.l2_normalize(support, -1))
    # -|q - s|^2 up to the per-query constant |q|^2, which does not change the argmax.
    return (2.0 * tf.einsum("tqd,tsd->tqs", query, support)
            - tf.reduce_sum(tf.square(support), axis=-1)[:, tf.newaxis, :])


def pixel_nearest_neighbour(support_x, support_y, query_x, metric="euclidean"):
    """Labels each query with the label of its nearest support example.

    Raw (flattened) inputs, no learning: the floor any few-shot learner must
    clear. Vinyals et al. (2016) report this baseline with the cosine
    similarity (`metric="cosine"`).

    Args:
        support_x: `[tasks, support, ...]`; support_y: `[tasks, support]`;
        query_x: `[tasks, queries, ...]`.
        metric: `"euclidean"` (nearest in L2 distance) or `"cosine"` (largest
            cosine similarity).

    Returns:
        int32 predicted labels `[tasks, queries]`.
    """
    _check_metric(metric)
    scores = _scores(_flat(query_x), _flat(support_x), metric)
    return tf.gather(tf.cast(support_y, tf.int32), tf.argmax(scores, axis=-1), batch_dims=1)


def pixel_nearest_prototype(support_x, support_y, query_x, ways):
    """Labels each query with the class whose mean support image (prototype) is nearest in L2 distance.

    Prototypical Networks with the identity as embedding: raw (flattened)
    inputs, no learning. With one shot it is `pixel_nearest_neighbour`.

    Args:
        support_x: `[tasks, support, ...]`; support_y: `[tasks, support]`
            with labels in `[0, ways)`, each present; query_x: `[tasks, queries, ...]`.
        ways: the number of classes per task.

    Returns:
        int32 predicted labels `[tasks, queries]`.
    """
    return _nearest_prototype(_flat(support_x), support_y, _flat(query_x), ways, "euclidean")


def _flat(x):
    """`[tasks, examples, ...]` -> float32 `[tasks, examples, features]`."""
    return tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], tf.shape(x)[1], -1])


def _nearest_prototype(support, support_y, query, ways, metric):
    """The label of the nearest class mean of `support` vectors, for each query vector `[tasks, queries]`."""
    means = prototypes(support, tf.cast(support_y, tf.int32), ways)
    return tf.argmax(_scores(query, means, metric), axis=-1, output_type=tf.int32)


def tfidf_nearest_prototype(training_texts, vocabulary_size=20000, metric="cosine", tokenize="auto"):
    """A text classifier without meta-learning: TF-IDF vectors, nearest class mean.

    Each text becomes its TF-IDF vector (`keras.layers.TextVectorization`
    with `output_mode="tf_idf"`, the same standardization and splitting as
    `tfmeta.models.text_tfidf_embedding`; vocabulary and inverse document
    frequencies from `training_texts`), L2-normalised; a query gets the label
    of the nearest class mean of its episode's support vectors (for one
    shot, the nearest support text). Words outside the vocabulary are left
    out.

    Args:
        training_texts: the texts the vocabulary and document frequencies
            are learned from (the meta-training texts, as for a model).
        vocabulary_size: the most frequent tokens kept (out-of-vocabulary
            included).
        metric: `"cosine"` or `"euclidean"` between query and class mean.
        tokenize: `"words"`, `"characters"` or `"auto"` (chosen from
            `training_texts`), as for the text embeddings.

    Returns:
        `predict(support_x, support_y, query_x)` on string meta-batches
        `[tasks, examples]` -> int32 labels `[tasks, queries]`, for
        `tfmeta.evaluation.episode_accuracies`.

    Reference:
        Salton, Buckley. Term-weighting approaches in automatic text
        retrieval. Information Processing & Management, 1988.
    """
    _check_metric(metric)
    vectorize = text_vectorization(training_texts, tokenize, max_tokens=vocabulary_size, output_mode="tf_idf")

    def vectors(x):
        # Column 0 counts the out-of-vocabulary words as one: unrelated unknown words would look alike.
        flat = tf.math.l2_normalize(vectorize(tf.reshape(x, [-1]))[:, 1:], -1)
        return tf.reshape(flat, [tf.shape(x)[0], tf.shape(x)[1], -1])

    def predict(support_x, support_y, query_x):
        ways = tf.reduce_max(tf.cast(support_y, tf.int32)) + 1
        return _nearest_prototype(vectors(support_x), support_y, vectors(query_x), ways, metric)

    return predict
