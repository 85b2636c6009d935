"""Prototypical Networks (Snell et al. 2017)."""

import keras
import tensorflow as tf

from tfmeta.algorithms.metric_learner import MetricLearner


def prototypes(support, support_y, ways):
    """Class prototypes: the mean support embedding of each class.

    Args:
        support: embeddings `[..., examples, features]`.
        support_y: int labels `[..., examples]` in `[0, ways)`.
        ways: number of classes.

    Returns:
        `[..., ways, features]`.
    """
    one_hot = tf.one_hot(support_y, ways, dtype=support.dtype)
    sums = tf.einsum("...sn,...sd->...nd", one_hot, support)
    return sums / tf.reduce_sum(one_hot, axis=-2)[..., tf.newaxis]


def prototype_logits(query, class_prototypes):
    """Logits = negative squared Euclidean distance to each prototype: `[..., queries, ways]`."""
    squared = (tf.reduce_sum(tf.square(query), -1)[..., :, tf.newaxis]
               - 2.0 * tf.einsum("...qd,...nd->...qn", query, class_prototypes)
               + tf.reduce_sum(tf.square(class_prototypes), -1)[..., tf.newaxis, :])
    return -squared


@keras.saving.register_keras_serializable(package="tfmeta")
class PrototypicalNetwork(MetricLearner):
    """Classifies a query by its squared distance to each class's mean embedding.

    Each element of the training data is a meta-batch of episodes; the loss is
    the cross-entropy of the query labels under `softmax(-distance)`.

    Args:
        embedding: a built Keras model mapping an example to a vector, e.g.
            `tfmeta.models.conv4_embedding()`.

    Reference:
        Snell, Swersky, Zemel. Prototypical Networks for Few-shot Learning.
        NeurIPS 2017.

    Example:
        >>> protonet = PrototypicalNetwork(tfmeta.models.conv4_embedding())
        >>> protonet.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> protonet.fit(tfmeta.data.episodes(train, 60, 5, 5, seed=0, meta_batch_size=1),
        ...              steps_per_epoch=100, epochs=10)
    """

    def classify(self, support, support_y, query, ways, training):
        return prototype_logits(query, prototypes(support, support_y, ways))
