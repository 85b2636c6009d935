"""Raw-pixel baselines: what a learned embedding has to beat."""

import tensorflow as tf

METRICS = ("cosine", "euclidean")


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
    if metric not in METRICS:
        raise ValueError(f"`metric` must be one of {METRICS}; received metric={metric!r}.")

    def flat(x):
        return tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], tf.shape(x)[1], -1])

    support, query = flat(support_x), flat(query_x)
    if metric == "cosine":
        scores = tf.einsum("tqd,tsd->tqs", tf.math.l2_normalize(query, -1), tf.math.l2_normalize(support, -1))
    else:
        # -|q - s|^2 up to the per-query constant |q|^2, which does not change the argmax.
        scores = (2.0 * tf.einsum("tqd,tsd->tqs", query, support)
                  - tf.reduce_sum(tf.square(support), axis=-1)[:, tf.newaxis, :])
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
    def flat(x):
        return tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], tf.shape(x)[1], -1])

    support, query = flat(support_x), flat(query_x)
    one_hot = tf.one_hot(tf.cast(support_y, tf.int32), ways)  # [tasks, support, ways]
    prototypes = tf.einsum("tsw,tsd->twd", one_hot, support) / tf.reduce_sum(one_hot, axis=1)[..., tf.newaxis]
    # -|q - p|^2 up to the per-query constant |q|^2, which does not change the argmax.
    scores = (2.0 * tf.einsum("tqd,twd->tqw", query, prototypes)
              - tf.reduce_sum(tf.square(prototypes), axis=-1)[:, tf.newaxis, :])
    return tf.argmax(scores, axis=-1, output_type=tf.int32)
