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
        predict: `predict(support_x, support_y, query_x)` on meta-batches ->
            predicted query labels `[tasks, queries]` or class scores
            `[tasks, queries, ways]`; run as a `tf.function`. For a tfmeta
            model, `model_predictor(model)`.
        episodes: a finite `tf.data.Dataset` of episode meta-batches, e.g.
            `evaluation_episodes(..., meta_batch_size=25)`.
        num_episodes: number of episodes in `episodes`, for the progress bar.
        verbose: 1 shows a Keras progress bar with the running mean accuracy.

    Returns:
        A NumPy vector of per-episode accuracies.
    """
    @tf.function
    def accuracies(batch):
        predicted = predict(batch["support_x"], batch["support_y"], batch["query_x"])
        if predicted.shape.rank == 3:
            predicted = tf.argmax(predicted, axis=-1, output_type=tf.int32)
        correct = tf.equal(tf.cast(predicted, tf.int32), tf.cast(batch["query_y"], tf.int32))
        return tf.reduce_mean(tf.cast(correct, tf.float32), axis=-1)

    progress = None
    if verbose:
        progress = keras.utils.Progbar(
            num_episodes, unit_name="episode", stateful_metrics=["mean accuracy"]
        )
    results = []
    for batch in episodes:
        results.extend(accuracies(batch).numpy().tolist())
        if progress is not None:
            progress.update(len(results), values=[("mean accuracy", np.mean(results))])
    return np.array(results)


def model_predictor(model, **call_kwargs):
    """`predict(support_x, support_y, query_x)` for a tfmeta model, for `episode_accuracies`.

    `call_kwargs` go to the model's call (e.g. `inference="transductive"`).
    """

    def predict(support_x, support_y, query_x):
        episodes = {"support_x": support_x, "support_y": support_y, "query_x": query_x}
        return model(episodes, training=False, **call_kwargs)

    return predict
