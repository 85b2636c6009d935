"""Prototypical Networks (Snell et al. 2017)."""

import keras
import tensorflow as tf

from tfmeta.algorithms.matching_networks import cosine_similarity
from tfmeta.algorithms.metric_learner import MetricLearner

DISTANCES = ("squared_euclidean", "cosine")


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
    """Classifies a query by its distance to each class's mean embedding.

    Each element of the training data is a meta-batch of episodes; the loss is
    the cross-entropy of the query labels under `softmax(-distance)`: the
    squared Euclidean distance (Snell et al.), or with `distance="cosine"`
    `softmax(temperature * cos(query, prototype))`, which suits embeddings
    whose length carries no meaning, e.g. TF-IDF vectors of texts (the
    squared distance to a mean of unit vectors also counts the mean's length,
    which shrinks as the class's examples spread).

    Args:
        embedding: a built Keras model mapping an example to a vector, e.g.
            `tfmeta.models.conv4_embedding()`.
        distance: `"squared_euclidean"` or `"cosine"`.
        temperature: with `distance="cosine"`, multiplies the cosines before
            the softmax.
        learn_temperature: with `distance="cosine"`, learn the temperature.

    Reference:
        Snell, Swersky, Zemel. Prototypical Networks for Few-shot Learning.
        NeurIPS 2017 (section 2.7 compares the two distances).

    Example:
        >>> protonet = PrototypicalNetwork(tfmeta.models.conv4_embedding())
        >>> protonet.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> protonet.fit(tfmeta.data.episodes(train, 60, 5, 5, seed=0, meta_batch_size=1),
        ...              steps_per_epoch=100, epochs=10)
    """

    def __init__(self, embedding, distance="squared_euclidean", temperature=1.0, learn_temperature=False,
                 **kwargs):
        super().__init__(embedding, **kwargs)
        if distance not in DISTANCES:
            raise ValueError(f"`distance` must be one of {DISTANCES}; received distance={distance!r}.")
        self.distance = distance
        if distance == "cosine":
            self.add_temperature(temperature, learn_temperature)
        elif temperature != 1.0 or learn_temperature:
            raise ValueError(f"`temperature` and `learn_temperature` scale cosines: they need distance='cosine'; "
                             f"received temperature={temperature!r}, learn_temperature={learn_temperature!r} "
                             f"with distance={distance!r}.")

    def classify(self, support, support_y, query, ways, training):
        # Means and distances in float32 at least: under a mixed policy the embeddings are float16, in which
        # |q|² - 2 q·p + |p|² loses the distance to cancellation (and overflows past 65504).
        if support.dtype in (tf.float16, tf.bfloat16):
            support, query = tf.cast(support, tf.float32), tf.cast(query, tf.float32)
        class_prototypes = prototypes(support, support_y, ways)
        if self.distance == "cosine":
            return tf.cast(self.temperature, support.dtype) * cosine_similarity(query, class_prototypes)
        return prototype_logits(query, class_prototypes)

    def get_config(self):
        config = {**super().get_config(), "distance": self.distance}
        if self.distance == "cosine":
            config.update(self.temperature_config())
        return config
