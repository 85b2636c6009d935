"""What both tutorial scripts need around the tutorial's code: Omniglot episodes as its tuples, scoring,
and the command to record. Not part of the tutorial."""

import pathlib
import shlex

import numpy as np
import tensorflow as tf

import tfmeta  # for the data only


def omniglot_tasks(split, ways, shots, queries, seed, num_episodes=None, meta_batch_size=None, data_dir=None,
                   flatten=False):
    """Episodes of an Omniglot split as the tutorial's tuples `(support_images, support_labels, query_images,
    query_labels)` with one-hot labels; `flatten` turns each 28x28 image into 784 pixels."""
    data = tfmeta.data.load_omniglot(split, data_dir)
    episodes = tfmeta.data.episodes(data, ways, shots, queries, seed, num_episodes, meta_batch_size)

    def images(x):
        return tf.reshape(x, tf.concat([tf.shape(x)[:-3], [-1]], 0)) if flatten else x

    return episodes.map(lambda e: (images(e["support_x"]), tf.one_hot(e["support_y"], ways),
                                   images(e["query_x"]), tf.one_hot(e["query_y"], ways)))


def run_steps(step, dataset, num_steps, unit, callback=None):
    """Runs `step(*tasks)` -> `(loss, accuracy)` on `num_steps` meta-batches of `dataset`, with a progress bar
    of the means over the last 20 steps; `callback(step)` runs after each and may return `[(name, value)]`
    pairs for the bar. Returns the per-step loss and accuracy."""
    history = {"loss": [], "accuracy": []}
    progress = tf.keras.utils.Progbar(num_steps, unit_name=unit, stateful_metrics=["loss", "accuracy", "val_accuracy"])
    for index, tasks in enumerate(dataset.take(num_steps), start=1):
        loss, accuracy = step(*tasks)
        history["loss"].append(float(loss))
        history["accuracy"].append(float(accuracy))
        shown = [(key, np.mean(values[-20:])) for key, values in history.items()]
        progress.update(index, shown + (callback(index) or []) if callback is not None else shown)
    return history


def episode_accuracies(accuracy, episodes, num_episodes, verbose=True):
    """`accuracy(*episode)` of each episode, with a progress bar."""
    progress = tf.keras.utils.Progbar(num_episodes, unit_name="episode",
                                      stateful_metrics=["mean accuracy"]) if verbose else None
    accuracies = []
    for episode in episodes:
        accuracies.append(float(accuracy(*episode)))
        if progress is not None:
            progress.update(len(accuracies), [("mean accuracy", np.mean(accuracies))])
    return np.array(accuracies)


def command_line(script, argv):
    """The command that ran `script` with `argv`, as typed from the repository's root."""
    path = pathlib.Path(script).resolve()
    return shlex.join(["python", path.relative_to(path.parents[2]).as_posix(), *argv])
