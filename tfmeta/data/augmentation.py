"""Seeded augmentation of episode streams."""

import tensorflow as tf

from tfmeta.data.episodes import check_positive_int, check_stream_arguments

IMAGE_KEYS = ("support_x", "query_x")


def shift_images(images, offsets, max_shift):
    """Translates each image of `images` `[..., H, W, C]` by its `offsets` `[..., 2]` (rows, columns) pixels.

    Pixels shifted in are 0 (Omniglot's background); offsets lie in
    `[-max_shift, max_shift]`. A positive offset moves the content down
    (right).
    """
    shape = tf.shape(images)
    height, width = images.shape[-3], images.shape[-2]
    flat = tf.reshape(images, tf.concat([[-1], shape[-3:]], 0))
    flat_offsets = tf.reshape(offsets, [-1, 2])
    padding = [[0, 0], [max_shift, max_shift], [max_shift, max_shift], [0, 0]]
    padded = tf.pad(flat, padding)
    # Output pixel (i, j) reads padded pixel (i + max_shift - dy, j + max_shift - dx).
    rows = tf.range(height)[None, :] + max_shift - flat_offsets[:, :1]
    columns = tf.range(width)[None, :] + max_shift - flat_offsets[:, 1:]
    shifted = tf.gather(padded, rows, axis=1, batch_dims=1)
    shifted = tf.gather(shifted, columns, axis=2, batch_dims=1)
    return tf.reshape(shifted, shape)


def random_shifts(stream, max_shift, seed, start=0):
    """Shifts every support and query image of an episode stream by up to `max_shift` pixels each way.

    Each image gets its own integer offset per axis, uniform in
    `[-max_shift, max_shift]`; element `i` of the stream (an episode or a
    meta-batch) uses offsets drawn from `(seed, start + i)` only, so a stream
    resumed with `start` continues as if never stopped. Small translations
    teach a model that a client's resizing or cropping may place a drawing a
    pixel off from where the training images had it.

    Args:
        stream: a `tf.data.Dataset` of episode dicts (`support_x`,
            `query_x` images `[..., H, W, C]`), batched or not.
        max_shift: largest shift in pixels, a positive integer.
        seed: integer seed of the offsets; the episodes' own seed will do
            (the offsets fold in a constant of their own).
        start: index of the stream's first element.

    Returns:
        The stream with shifted images; labels unchanged.

    Example:
        >>> train = tfmeta.data.episodes(data, 5, 1, 15, seed=0, meta_batch_size=32)
        >>> train = tfmeta.data.random_shifts(train, max_shift=1, seed=0)
    """
    check_positive_int("max_shift", max_shift)

    def shift(images, key_seed):
        offsets = tf.random.stateless_uniform(tf.concat([tf.shape(images)[:-3], [2]], 0), key_seed,
                                              minval=-max_shift, maxval=max_shift + 1, dtype=tf.int32)
        return shift_images(images, offsets, max_shift)

    return _seeded_image_map(stream, shift, seed, 0x5A1F7, start)


def random_flips(stream, seed, start=0):
    """Mirrors each support and query image of an episode stream left to right with probability 1/2.

    Seeded per stream element as `random_shifts` (a constant of its own
    folded in), so it resumes with `start`. For natural images, whose
    classes do not change in a mirror (photos; not characters).

    Example:
        >>> train = tfmeta.data.augmentation.random_flips(train, seed=0)
    """
    def flip(images, key_seed):
        flipped = tf.random.stateless_uniform(tf.shape(images)[:-3], key_seed) < 0.5
        return tf.where(flipped[..., tf.newaxis, tf.newaxis, tf.newaxis], tf.reverse(images, axis=[-2]), images)

    return _seeded_image_map(stream, flip, seed, 0xF11B, start)


def _seeded_image_map(stream, transform, seed, salt, start):
    """The stream with `transform(images, key_seed)` applied to each of its `IMAGE_KEYS`; the key seeds of
    element `i` come from `(seed, salt, start + i)` only."""
    check_stream_arguments(seed, "num_episodes", None, None, start)

    def apply(index, episode):
        episode = dict(episode)
        element_seed = tf.random.experimental.stateless_fold_in(tf.constant([seed, salt], tf.int64), index)
        for key, key_seed in zip(IMAGE_KEYS, tf.unstack(tf.random.experimental.stateless_split(element_seed, 2))):
            episode[key] = transform(episode[key], key_seed)
        return episode

    indices = tf.data.Dataset.counter(start)
    return tf.data.Dataset.zip(indices, stream).map(apply, num_parallel_calls=tf.data.AUTOTUNE,
                                                    deterministic=True).prefetch(tf.data.AUTOTUNE)
