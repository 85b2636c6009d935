"""N-way K-shot episodes as a `tf.data.Dataset`."""

import numbers

import numpy as np
import tensorflow as tf

from tfmeta.data.labelled import LabelledData


def check_positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; received {name}={value!r}.")


def check_episode_shape(data, ways, shots, queries):
    """Raises a `ValueError` unless `data` can supply `ways`-way episodes of
    `shots` support and `queries` query examples per class."""
    for name, value in (("ways", ways), ("shots", shots), ("queries", queries)):
        check_positive_int(name, value)
    if ways > data.num_classes:
        raise ValueError(
            f"ways={ways} exceeds the {data.num_classes} classes in the data; "
            "an episode needs `ways` distinct classes."
        )
    needed = shots + queries
    short = np.flatnonzero(data.class_count < needed)
    if short.size:
        c = short[np.argmin(data.class_count[short])]
        raise ValueError(
            f"shots + queries = {shots} + {queries} = {needed} examples are needed from each "
            f"class, but {short.size} class(es) have fewer, e.g. {data.class_names[c]!r} with "
            f"{data.class_count[c]}."
        )


def _group_ids(data, class_groups, ways):
    """`(group id of each class, ids of the groups with at least `ways` classes)`, validated."""
    class_groups = np.asarray(class_groups)
    if class_groups.shape != (data.num_classes,):
        raise ValueError(f"`class_groups` must hold one group per class ({data.num_classes}); received shape "
                         f"{class_groups.shape}.")
    names, group_of_class = np.unique(class_groups, return_inverse=True)
    sizes = np.bincount(group_of_class)
    eligible = np.flatnonzero(sizes >= ways)
    if not eligible.size:
        raise ValueError(f"ways={ways} exceeds the largest class group ({names[np.argmax(sizes)].item()!r} with "
                         f"{sizes.max()} classes); an episode within one group needs `ways` classes from it.")
    return group_of_class.astype(np.int32), eligible.astype(np.int32)


def _classes_within_one_group(seed, group_of_class, eligible_groups, ways):
    """`ways` distinct classes of one group, in random order; the group uniform among `eligible_groups`."""
    group_seed, order_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    pick = tf.random.stateless_uniform([], group_seed, maxval=tf.size(eligible_groups), dtype=tf.int32)
    keys = tf.random.stateless_uniform(tf.shape(group_of_class), order_seed)
    keys = tf.where(tf.equal(group_of_class, tf.gather(eligible_groups, pick)), keys, 2.0)
    return tf.argsort(keys)[:ways]


def _sample_indices(seed, class_start, class_count, ways, per_class, max_count, groups=None):
    """Draws the example rows of one episode from a stateless seed.

    Returns `[ways, per_class]` row indices: row `i` holds the examples of the
    class that gets label `i`. Pure function of `seed`, so episode `i` of a
    stream is the same whatever order or parallelism computes it. `groups`,
    if given, is `(group id of each class, eligible group ids)`: the classes
    then come from one group.
    """
    class_seed, example_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    num_classes = tf.shape(class_start)[0]
    if groups is None:
        # A random permutation gives distinct classes and a fresh label order at once.
        classes = tf.random.experimental.stateless_shuffle(tf.range(num_classes), class_seed)[:ways]
    else:
        classes = _classes_within_one_group(class_seed, *groups, ways)
    count = tf.gather(class_count, classes)
    # Without replacement within each class: sort random keys, with positions
    # past the class's own count pushed to the end.
    keys = tf.random.stateless_uniform([ways, max_count], example_seed)
    keys = tf.where(tf.range(max_count)[tf.newaxis, :] < count[:, tf.newaxis], keys, 2.0)
    positions = tf.argsort(keys, axis=1)[:, :per_class]
    return tf.gather(class_start, classes)[:, tf.newaxis] + positions


def episodes(data, ways, shots, queries, seed, num_episodes=None, meta_batch_size=None, start=0,
             class_groups=None, shuffle=True):
    """A stream of N-way K-shot episodes drawn from labelled data.

    Each episode is a dict:
      - `support_x` `[ways * shots, ...]`, `support_y` int32 `[ways * shots]`,
      - `query_x` `[ways * queries, ...]`, `query_y` int32 `[ways * queries]`,

    with the examples of the support set, and of the query set, in random
    order (labels kept aligned), or class by class (`support_y = [0]*shots +
    [1]*shots + ...`) with `shuffle=False`. Its `ways` classes are distinct and
    get the labels `0..ways-1` in a fresh random order; each contributes
    exactly `shots` support and `queries` query examples, drawn without
    replacement, so support and query never share an example. Episode `i`
    depends only on `(seed, i)`: the same seed gives the same stream with any
    parallelism, for a given TensorFlow version and device type (stateless
    random ops are not promised to be stable across them).

    Sampling and gathering run as TensorFlow ops inside the `tf.data`
    pipeline (parallel map, prefetch); the data stay in memory. uint8 data
    are pixels: held as uint8 (a quarter of float32's memory), the drawn
    examples become float32 in [0, 1] (`x / 255`) inside the pipeline.

    Args:
        data: a `LabelledData`, or a `LabelledText`, whose episodes carry
            `tf.string` examples (`support_x` `[ways * shots]`).
        ways, shots, queries: classes per episode, support and query examples
            per class.
        seed: integer seed of the stream.
        num_episodes: length of the stream; `None` for an endless stream.
        meta_batch_size: if given, episodes are batched into meta-batches with
            a static leading task axis of this size; it must divide
            `num_episodes` when that is given.
        start: index of the first episode: a stream resumed after `n`
            episodes continues with `start=n`.
        class_groups: optionally, a group per class (e.g. Omniglot's
            alphabet, as Lake's within-alphabet runs): each episode then takes
            all its classes from one group, chosen uniformly among the groups
            with at least `ways` classes.
        shuffle: put the examples of each set in random order. Order-aware
            learners (Matching Networks' FCE reads the support set with
            LSTMs) then never learn to rely on the class-by-class order, which
            a client need not follow. The classes and examples drawn are the
            same either way.

    Returns:
        A `tf.data.Dataset` of episode dicts.

    Example:
        >>> train = tfmeta.data.load_omniglot("vinyals-train", data_dir)
        >>> stream = episodes(train, ways=5, shots=1, queries=15, seed=0,
        ...                   meta_batch_size=32)
        >>> model.fit(stream, steps_per_epoch=100, epochs=10)
    """
    if not isinstance(data, LabelledData):
        raise TypeError(
            f"`data` must be a tfmeta.data.LabelledData; received {type(data).__name__}. "
            "Wrap arrays with LabelledData(images, labels)."
        )
    check_episode_shape(data, ways, shots, queries)
    check_stream_arguments(seed, "num_episodes", num_episodes, meta_batch_size, start)
    groups = None if class_groups is None else tuple(map(tf.constant, _group_ids(data, class_groups, ways)))

    images = tf.constant(data.images)
    class_start = tf.constant(data.class_start, tf.int32)
    class_count = tf.constant(data.class_count, tf.int32)
    max_count = int(data.class_count.max())
    support_y = tf.repeat(tf.range(ways, dtype=tf.int32), shots)
    query_y = tf.repeat(tf.range(ways, dtype=tf.int32), queries)

    def examples(rows):
        x = tf.gather(images, rows)
        return tf.cast(x, tf.float32) / 255.0 if x.dtype == tf.uint8 else x

    def make_episode(seed):
        rows = _sample_indices(seed, class_start, class_count, ways, shots + queries, max_count, groups)
        support_rows, query_rows = tf.reshape(rows[:, :shots], [-1]), tf.reshape(rows[:, shots:], [-1])
        support_order, query_order = tf.range(ways * shots), tf.range(ways * queries)
        if shuffle:  # from seeds of their own, so the examples drawn do not depend on `shuffle`
            order_seeds = tf.random.experimental.stateless_fold_in(seed, 1)
            support_seed, query_seed = tf.unstack(tf.random.experimental.stateless_split(order_seeds, 2))
            support_order = tf.random.experimental.stateless_shuffle(support_order, support_seed)
            query_order = tf.random.experimental.stateless_shuffle(query_order, query_seed)
        return {
            "support_x": examples(tf.gather(support_rows, support_order)),
            "support_y": tf.gather(support_y, support_order),
            "query_x": examples(tf.gather(query_rows, query_order)),
            "query_y": tf.gather(query_y, query_order),
        }

    return seeded_stream(make_episode, seed, num_episodes, meta_batch_size, start)


def check_stream_arguments(seed, length_name, length, meta_batch_size, start=0):
    """Raises a `ValueError` unless a task stream's seed, length, meta-batch size and start are valid."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"`seed` must be an integer; received seed={seed!r}.")
    if isinstance(start, bool) or not isinstance(start, numbers.Integral) or start < 0:
        raise ValueError(f"`start` must be a non-negative integer; received start={start!r}.")
    check_positive_int(length_name, length, allow_none=True)
    check_positive_int("meta_batch_size", meta_batch_size, allow_none=True)
    if length and meta_batch_size and length % meta_batch_size:
        raise ValueError(
            f"{length_name}={length} is not a multiple of meta_batch_size={meta_batch_size}: the last "
            f"{length % meta_batch_size} would be dropped. Use a meta_batch_size that divides it, e.g. "
            f"{fitting_meta_batch_size(length)} (tfmeta.data.fitting_meta_batch_size).")


def fitting_meta_batch_size(num_tasks, largest=25):
    """The largest meta-batch size up to `largest` that divides `num_tasks`, so that none is dropped.

    Example:
        >>> fitting_meta_batch_size(1000), fitting_meta_batch_size(60)
        (25, 20)
    """
    check_positive_int("num_tasks", num_tasks)
    return next(size for size in range(min(largest, num_tasks), 0, -1) if num_tasks % size == 0)


def seeded_stream(make_task, seed, num_tasks=None, meta_batch_size=None, start=0):
    """A `tf.data` stream whose task `i` is `make_task(stateless seed of (seed, i))`, from `i = start`.

    The map runs in parallel and deterministically; `meta_batch_size` batches
    tasks with a static leading axis. Callers validate the arguments first
    (`check_stream_arguments`, which refuses a finite stream that would leave
    a partial last batch).
    """
    indices = tf.data.Dataset.range(start, start + num_tasks) if num_tasks else tf.data.Dataset.counter(start)
    stream = indices.map(
        lambda index: make_task(tf.stack([tf.constant(seed, tf.int64), index])),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if meta_batch_size:
        stream = stream.batch(meta_batch_size, drop_remainder=True)
    return stream.prefetch(tf.data.AUTOTUNE)


def evaluation_episodes(data, ways, shots, queries, num_episodes, seed=0, meta_batch_size=None, class_groups=None,
                        shuffle=True):
    """A fixed, finite set of episodes for comparing models on identical tasks.

    `episodes` with a required length and a default seed: the same arguments
    give the same tasks in every call, process and machine, so two models
    evaluated on them are compared on identical tasks. Nothing is cached:
    the episodes are recomputed from their seeds, which costs less than
    holding thousands of them in memory. Draw them from held-out classes.
    """
    check_positive_int("num_episodes", num_episodes)
    return episodes(data, ways, shots, queries, seed, num_episodes, meta_batch_size, class_groups=class_groups,
                    shuffle=shuffle)
