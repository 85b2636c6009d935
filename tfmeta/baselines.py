"""Raw-pixel baselines: what a learned embedding has to beat."""

import tensorflow as tf


def pixel_nearest_neighbour(support_x, support_y, query_x):
    """Labels each query with the label of its nearest support example.

    Euclidean distance on raw (flattened) inputs, no learning: the floor any
    few-shot learner must clear.

    Args:
        support_x: `[tasks, support, ...]`; support_y: `[tasks, support]`;
        query_x: `[tasks, queries, ...]`.

    Returns:
        int32 predicted labels `[tasks, queries]`.
    """
    def flat(x):
        return tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], tf.shape(x)[1], -1])

    support, query = flat(support_x), flat(query_x)
    # |q - s|^2 up to the per-query constant |q|^2, which does not change the argmin.
    distances = (tf.reduce_sum(tf.square(support), axis=-1)[:, tf.newaxis, :]
                 - 2.0 * tf.einsum("tqd,tsd->tqs", query, support))
    return tf.gather(tf.cast(support_y, tf.int32), tf.argmin(distances, axis=-1), batch_dims=1)
