"""What every few-shot learner shares: a Keras model over meta-batches of episodes."""

import keras
import tensorflow as tf

from tfmeta.algorithms import episode_checks


class EpisodicModel(keras.Model):
    """Base of the few-shot learners: trains with `fit` on meta-batches of episodes.

    Each element of the data is a dict of `support_x`, `support_y`,
    `query_x`, `query_y` with a leading task axis (what
    `tfmeta.data.episodes(..., meta_batch_size=...)` yields). `call` takes the
    same dict (without `query_y`) and returns query scores
    `[tasks, queries, ways]`: logits or log-probabilities, so that
    `argmax` is the prediction and softmax the class probabilities.

    Subclasses set `task_loss` (the loss of query scores), implement `call`,
    `train_step` and `check_first_batch`, and give `example_shape`.
    """

    is_classifier = True

    @property
    def example_shape(self):
        """Shape of one input example, or None if unknown."""
        raise NotImplementedError

    def check_first_batch(self, batch):
        """Raises a `ValueError` naming what is wrong with the labels of a meta-batch."""
        raise NotImplementedError

    def check_labels_in_graph(self, episodes):
        """Adds assertions on data-dependent label properties to the graph.

        Returns the assertion ops (in a graph); `call` and any step that
        bypasses it gate their work on them through `checked_episodes`.
        """
        return []

    def checked_episodes(self, episodes):
        """`episodes`, computed only after `check_labels_in_graph`'s assertions ran.

        Without the dependency, a kernel that validates labels itself (a
        cross-entropy) may fail first, with a less helpful message.
        """
        with tf.control_dependencies(self.check_labels_in_graph(episodes)):
            return {key: tf.identity(value) for key, value in episodes.items()}

    def compile(self, optimizer="adam", metrics="auto", **kwargs):
        """Configures meta-training: the outer optimizer and metrics.

        `metrics="auto"` reports query accuracy for classifiers. The loss
        belongs to the learner (it is part of the algorithm), so `loss=` is
        refused here.
        """
        if kwargs.get("loss") is not None:
            raise ValueError(
                f"{type(self).__name__} takes its loss in its constructor, as part of the algorithm; "
                f"received compile(loss={kwargs['loss']!r})."
            )
        kwargs.pop("loss", None)
        if metrics == "auto":
            metrics = ["accuracy"] if self.is_classifier else []
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        # Keras skips this (with a warning) for models that override
        # `compile`; ours takes the same arguments, so a loaded model comes
        # back compiled, optimizer state included.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def episodes_of(self, data, need_query_y=True):
        """The episode dict of a step's data."""
        return episode_checks.unpack(data, need_query_y)

    def test_step(self, data):
        episodes = self.episodes_of(data)
        scores = self(episodes, training=False)
        return self.update_metrics(self.task_loss(episodes["query_y"], scores), episodes["query_y"], scores)

    def predict_step(self, data):
        return self(self.episodes_of(data, need_query_y=False), training=False)

    def update_metrics(self, loss, query_y, scores):
        # Keras's documented pattern for a custom step: the "loss" metric
        # tracks the loss, the compiled metrics see labels and predictions.
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(query_y, scores)
        return {m.name: m.result() for m in self.metrics}

    def _check_data(self, data, need_query_y):
        episode_checks.check_episode_data(
            data, self.example_shape, need_query_y, self.is_classifier,
            self.check_first_batch if self.is_classifier else None,
        )

    def fit(self, x=None, y=None, validation_data=None, **kwargs):
        self._check_data(x, need_query_y=True)
        if validation_data is not None:
            self._check_data(validation_data, need_query_y=True)
        kwargs.setdefault("shuffle", False)  # episode streams are random already
        return super().fit(x, y, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, **kwargs):
        self._check_data(x, need_query_y=True)
        return super().evaluate(x, y, **kwargs)

    def predict(self, x, **kwargs):
        self._check_data(x, need_query_y=False)
        return super().predict(x, **kwargs)


def assert_labels_below(episodes, keys, ways, what):
    """Graph assertions: labels under `keys` lie in `[0, ways)`. Returns the assertion ops."""
    checks = []
    for key in keys:
        if key not in episodes:
            continue
        labels = episodes[key]
        checks.append(tf.debugging.assert_non_negative(labels, message=f"{key} holds a negative label"))
        checks.append(tf.debugging.assert_less(labels, tf.cast(ways, labels.dtype),
                                               message=f"{key} holds a label outside [0, {what})"))
    return checks
