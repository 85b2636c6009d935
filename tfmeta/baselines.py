"""Raw-pixel baselines: what a learned embedding has to beat."""

import tensorflow as tf


def pixel_nearest_neighbour(support_x, support_y, query_x):
    """Labels each query with the label of its nearest support example.

    Euclidean distance on raw (flattened) inputs, no learning: the floor any
    few-shot learner must clear.

    Returns:
        int32 predicted labels `[Q]`.
    """
    support = tf.reshape(tf.cast(support_x, tf.float32), [tf.shape(support_x)[0], -1])
    query = tf.reshape(tf.cast(query_x, tf.float32), [tf.shape(query_x)[0], -1])
    # |q - s|^2 up to the per-query constant |q|^2, which does not change the argmin.
    distances = tf.reduce_sum(tf.square(support), axis=1)[tf.newaxis, :] - 2.0 * tf.matmul(
        query, support, transpose_b=True
    )
    return tf.gather(tf.cast(support_y, tf.int32), tf.argmin(distances, axis=1))
