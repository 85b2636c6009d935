"""Accuracy over fixed evaluation episodes, with a 95% confidence interval."""

import keras
import numpy as np
import tensorflow as tf


def mean_confidence_interval(values, z=1.96):
    """Mean and half-width of its normal-approximation confidence interval.

    The convention of the few-shot literature: `z * std / sqrt(n)` over
    per-episode accuracies (z = 1.96 for 95%).

    Returns:
        `(mean, half_width)` as floats; the half-width is 0.0 for one value.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("Need at least one value for a confidence interval; received none.")
    if values.size == 1:
        return float(values[0]), 0.0
    return float(values.mean()), float(z * values.std(ddof=1) / np.sqrt(values.size))


def episode_accuracies(predict, episodes, num_episodes=None, verbose=1):
    """Query accuracy of `predict` on every episode of a finite stream.

    Args:
        predict: `predict(support_x, support_y, query_x)` -> predicted query
            labels `[Q]` or class scores `[Q, ways]`; wrapped in a
            `tf.function` here.
        episodes: a finite `tf.data.Dataset` of unbatched episode dicts.
        num_episodes: length of `episodes`, for the progress bar.
        verbose: 1 shows a Keras progress bar with the running mean accuracy.

    Returns:
        A NumPy vector of per-episode accuracies.
    """
    @tf.function
    def accuracy(episode):
        predicted = predict(episode["support_x"], episode["support_y"], episode["query_x"])
        if predicted.shape.rank == 2:
            predicted = tf.argmax(predicted, axis=-1, output_type=tf.int32)
        correct = tf.equal(tf.cast(predicted, tf.int32), episode["query_y"])
        return tf.reduce_mean(tf.cast(correct, tf.float32))

    progress = None
    if verbose:
        progress = keras.utils.Progbar(
            num_episodes, unit_name="episode", stateful_metrics=["mean accuracy"]
        )
    accuracies = []
    for episode in episodes:
        accuracies.append(float(accuracy(episode)))
        if progress is not None:
            progress.add(1, values=[("mean accuracy", np.mean(accuracies))])
    return np.array(accuracies)
