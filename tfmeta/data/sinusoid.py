"""Sinusoid regression tasks, MAML's toy problem (Finn et al. 2017, section 5.1)."""

import numpy as np
import tensorflow as tf

from tfmeta.data.episodes import check_positive_int, check_stream_arguments, seeded_stream


def _check_range(name, value):
    low, high = value
    if not low <= high:
        raise ValueError(f"`{name}` must be a (low, high) pair with low <= high; received {value!r}.")
    return float(low), float(high)


def sinusoid_tasks(shots, queries, seed, num_tasks=None, meta_batch_size=None, start=0,
                   amplitude_range=(0.1, 5.0), phase_range=(0.0, np.pi), x_range=(-5.0, 5.0)):
    """A stream of K-shot sinusoid regression tasks, `y = A sin(x - φ)`.

    Each task draws an amplitude `A ~ U(amplitude_range)`, a phase
    `φ ~ U(phase_range)`, and inputs `x ~ U(x_range)`: `shots` support and
    `queries` query points. Tasks are dicts of float32 `support_x`,
    `support_y` `[shots, 1]`, `query_x`, `query_y` `[queries, 1]`, plus the
    task's scalar `amplitude` and `phase` (for plotting the true function).
    Task `i` depends only on `(seed, i)`.

    Args:
        shots, queries: support and query points per task.
        seed: integer seed of the stream.
        num_tasks: stream length; `None` for endless.
        meta_batch_size: if given, batch tasks with a static leading axis.
        start: index of the first task (to resume a stream).
        amplitude_range, phase_range, x_range: the task distribution; the
            defaults are Finn et al.'s.

    Reference:
        Finn, Abbeel, Levine. Model-Agnostic Meta-Learning for Fast Adaptation
        of Deep Networks. ICML 2017.

    Example:
        >>> tasks = sinusoid_tasks(shots=10, queries=10, seed=0, meta_batch_size=25)
    """
    check_positive_int("shots", shots)
    check_positive_int("queries", queries)
    check_stream_arguments(seed, "num_tasks", num_tasks, meta_batch_size, start)
    amplitude_range = _check_range("amplitude_range", amplitude_range)
    phase_range = _check_range("phase_range", phase_range)
    x_range = _check_range("x_range", x_range)

    def make_task(seed):
        draws = tf.random.stateless_uniform([2 + shots + queries], seed)

        def scale(u, bounds):
            return bounds[0] + u * (bounds[1] - bounds[0])

        amplitude = scale(draws[0], amplitude_range)
        phase = scale(draws[1], phase_range)
        x = scale(draws[2:], x_range)[:, tf.newaxis]
        y = amplitude * tf.sin(x - phase)
        return {
            "support_x": x[:shots], "support_y": y[:shots],
            "query_x": x[shots:], "query_y": y[shots:],
            "amplitude": amplitude, "phase": phase,
        }

    return seeded_stream(make_task, seed, num_tasks, meta_batch_size, start)
