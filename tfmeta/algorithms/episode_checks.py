"""Checks that episode data fit a model, before anything is traced."""

import keras
import numpy as np
import tensorflow as tf

EPISODE_KEYS = ("support_x", "support_y", "query_x", "query_y")


def unpack(data, need_query_y=True):
    """The episode dict of a Keras step's `data`."""
    data, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    keys = EPISODE_KEYS if need_query_y else EPISODE_KEYS[:3]
    if not isinstance(data, dict) or any(key not in data for key in keys):
        raise ValueError(
            f"Expected episodes: a dict with keys {list(keys)}; received "
            f"{sorted(data) if isinstance(data, dict) else type(data).__name__}."
        )
    return data


def _is_text(dtype):
    return dtype == tf.string


def strings_as_tensors(data):
    """`data`, with the NumPy string arrays of a dict of episodes as `tf.string` tensors.

    Keras's NumPy data adapter refuses strings; it takes them as tensors.
    """
    if not isinstance(data, dict):
        return data
    return {key: tf.constant(value) if isinstance(value, np.ndarray) and value.dtype.kind in "OSU" else value
            for key, value in data.items()}


def check_episode_data(data, example_shape, need_query_y, integer_labels, check_first_batch=None,
                       example_dtype=None):
    """Raises a `ValueError` naming the problem if `data` cannot feed a model.

    `data` is a `tf.data.Dataset` of episode meta-batches or a dict of arrays
    with a leading task axis. Checks keys, ranks, that support and query
    examples match each other and the model's `example_shape` (if known),
    that they are strings exactly when the model's `example_dtype` is,
    that there is one label per example (integers if `integer_labels`), and
    finally runs `check_first_batch` on the first meta-batch, as NumPy.
    """
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if not isinstance(spec, dict):
            raise ValueError(f"Episode datasets must yield dicts; received elements of spec {spec}.")
        shapes = {key: tuple(s.shape) for key, s in spec.items()}
        dtypes = {key: s.dtype for key, s in spec.items()}
    elif isinstance(data, dict):
        shapes = {key: tuple(np.shape(value)) for key, value in data.items()}
        dtypes = {key: tf.string if np.asarray(value).dtype.kind in "OSU"
                  else tf.as_dtype(getattr(value, "dtype", np.asarray(value).dtype)) for key, value in data.items()}
    else:
        raise ValueError(
            "Expected episodes as a tf.data.Dataset of dicts (tfmeta.data.episodes) or a dict of "
            f"arrays with keys {list(EPISODE_KEYS)}; received {type(data).__name__}."
        )
    keys = EPISODE_KEYS if need_query_y else EPISODE_KEYS[:3]
    missing = [key for key in keys if key not in shapes]
    if missing:
        raise ValueError(f"Episodes lack the keys {missing}; received keys {sorted(shapes)}.")

    for key in ("support_x", "query_x"):
        shape = shapes[key]
        if example_shape is not None and len(shape) == len(example_shape) + 1:
            raise ValueError(
                f"{key} has shape {shape}: one episode, without a task axis. Batch episodes "
                "into meta-batches, e.g. tfmeta.data.episodes(..., meta_batch_size=32)."
            )
        if example_shape is not None and (
            len(shape) != len(example_shape) + 2
            or any(a is not None and b is not None and a != b for a, b in zip(shape[2:], example_shape))
        ):
            raise ValueError(
                f"{key} has shape {shape}, but the model takes examples of shape {example_shape}: "
                f"expected [{', '.join(['tasks', 'examples', *map(str, example_shape)])}]."
            )
        if example_dtype is not None and _is_text(tf.as_dtype(example_dtype)) != _is_text(dtypes[key]):
            raise ValueError(
                f"{key} holds {dtypes[key].name} examples, but the model takes "
                f"{'raw text (strings)' if _is_text(tf.as_dtype(example_dtype)) else 'numbers'}."
            )
    if shapes["support_x"][2:] != shapes["query_x"][2:]:
        raise ValueError(
            f"support_x and query_x examples differ in shape: {shapes['support_x'][2:]} vs "
            f"{shapes['query_x'][2:]}."
        )
    for x_key, y_key in (("support_x", "support_y"), ("query_x", "query_y")):
        if y_key not in shapes:
            continue
        if shapes[y_key][:2] != shapes[x_key][:2]:
            raise ValueError(
                f"{y_key} has shape {shapes[y_key]} but {x_key} has {shapes[x_key]}: expected one "
                "label per example."
            )
        if integer_labels and not dtypes[y_key].is_integer:
            raise ValueError(f"{y_key} must hold integer class labels; received dtype {dtypes[y_key].name}.")
    if len(shapes["support_x"]) > 1 and shapes["support_x"][1] == 0:
        raise ValueError("support_x is empty: every task needs a support set.")
    if check_first_batch is not None:
        first = next(iter(data.take(1))) if isinstance(data, tf.data.Dataset) else data
        check_first_batch({key: np.asarray(value) for key, value in first.items()})
