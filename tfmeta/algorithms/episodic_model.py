"""What every few-shot learner shares: a Keras model over meta-batches of episodes."""

import re

import keras
import tensorflow as tf

from tfmeta.algorithms import episode_checks
from tfmeta.algorithms.keras_internals import SymbolicBuildForStrategies


NON_FINITE = ("stop", "skip")
NON_FINITE_MESSAGE = "Non-finite meta-loss or gradient at training step"


class EpisodicModel(SymbolicBuildForStrategies, keras.Model):
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

    def compile(self, optimizer="adam", metrics="auto", non_finite="stop", **kwargs):
        """Configures meta-training: the outer optimizer, metrics, and what a non-finite step does.

        `metrics="auto"` reports query accuracy for classifiers. The loss
        belongs to the learner (it is part of the algorithm), so `loss=` is
        refused here. `non_finite`: when a step's loss or a gradient is NaN
        or infinite, the step's changes (weights, optimizer state, moving
        statistics) are undone, then `"stop"` ends training with a
        `FloatingPointError` naming the step and `"skip"` goes on (the
        `skipped_steps` log counts such steps per epoch). Clip gradients
        with the optimizer's own `global_clipnorm`.
        """
        if non_finite not in NON_FINITE:
            raise ValueError(f"`non_finite` must be one of {NON_FINITE}; received non_finite={non_finite!r}.")
        self.non_finite = non_finite
        if getattr(self, "skipped_steps", None) is None:
            self.skipped_steps = keras.metrics.Sum(name="skipped_steps")
        if kwargs.get("loss") is not None:
            raise ValueError(
                f"{type(self).__name__} takes its loss in its constructor, as part of the algorithm; "
                f"received compile(loss={kwargs['loss']!r})."
            )
        kwargs.pop("loss", None)
        if metrics == "auto":
            metrics = ["accuracy"] if self.is_classifier else []
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None:
            config["non_finite"] = self.non_finite
        return config

    def compile_from_config(self, config):
        # Keras skips this (with a warning) for models that override
        # `compile`; ours takes the same arguments, so a loaded model comes
        # back compiled, optimizer state included.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def mean_loss(self, y_true, y_pred):
        """`task_loss` as a plain mean over the examples.

        Under a tf.distribute strategy, Keras `Loss` objects divide their
        mean by the number of replicas (so that gradients summed over
        replicas average). A task's loss must not depend on how many
        replicas run, or MAML's inner steps would shrink; `apply_update`
        weighs each replica's gradients instead.
        """
        if isinstance(self.task_loss, keras.losses.Loss):
            values = self.task_loss.call(y_true, tf.cast(y_pred, self.task_loss.dtype))
        else:
            values = self.task_loss(y_true, y_pred)
        return tf.reduce_mean(values)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        # Keras builds metrics from (x, y); an episode's labels live in x.
        # (Under a tf.distribute strategy, fit builds them this way first.)
        if y is None and isinstance(x, dict):
            y = x.get("query_y")
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def episodes_of(self, data, need_query_y=True):
        """The episode dict of a step's data."""
        return episode_checks.unpack(data, need_query_y)

    def test_step(self, data):
        episodes = self.episodes_of(data)
        scores = self(episodes, training=False)
        return self.update_metrics(self.mean_loss(episodes["query_y"], scores), episodes["query_y"], scores)

    def predict_step(self, data):
        return self(self.episodes_of(data, need_query_y=False), training=False)

    def update_metrics(self, loss, query_y, scores, counted=None):
        # Keras's documented pattern for a custom step: the "loss" metric
        # tracks the loss, the compiled metrics see labels and predictions.
        # `counted` (a boolean) leaves a skipped step out of the means.
        weight = None if counted is None else tf.cast(counted, tf.float32)
        if counted is not None:
            loss = tf.where(counted, loss, tf.zeros_like(loss))
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss, sample_weight=weight)
            elif metric is not self.skipped_steps:  # counted by apply_update
                metric.update_state(query_y, scores, sample_weight=weight)
        logs = {m.name: m.result() for m in self.metrics
                if m is not self.skipped_steps or self.non_finite == "skip"}
        if isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
            # Keras 3 averages logs over multi-worker replicas with
            # strategy.reduce(..., axis=0), which fails on scalars
            # (tensorflow/tensorflow#72388): give it vectors of one.
            logs = keras.tree.map_structure(lambda value: tf.reshape(value, [1]), logs)
        return logs

    def _step_state(self):
        """Every variable a training step may change."""
        return [*self.trainable_variables, *self.non_trainable_variables, *self.optimizer.variables]

    def state_before_step(self):
        """The values of `_step_state`, read at the start of a training step (for `apply_update`)."""
        return [tf.identity(variable.value) for variable in self._step_state()]

    def apply_update(self, loss, gradients, variables, before, tasks, assignments=()):
        """The outer update, undone if the loss or a gradient is not finite.

        `gradients` are the mean over this replica's `tasks` tasks. Under a
        tf.distribute strategy they are weighed by this replica's share of
        all tasks, so that the optimizer's sum over replicas is the mean over
        the global meta-batch, as on one device. Applies them to `variables`
        and then `assignments` (variable, value pairs). If anything was NaN
        or infinite on any replica, every variable of the step returns to
        its value in `before` (`state_before_step`), and
        `non_finite="stop"` raises (see `fit`). Returns whether the step counted.
        """
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(tensor)) for tensor in [loss, *gradients]])
        replica = tf.distribute.get_replica_context()
        if replica is not None and replica.num_replicas_in_sync > 1:
            local = tf.cast(tasks, tf.float32)
            share = local / replica.all_reduce(tf.distribute.ReduceOp.SUM, local)
            gradients = [gradient * tf.cast(share, gradient.dtype) for gradient in gradients]
            failures = replica.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32))
            finite = tf.equal(failures, 0.0)
        self.optimizer.apply(gradients, variables)
        for variable, value in assignments:
            variable.assign(value)
        restored = [variable.assign(tf.where(finite, variable.value, old))
                    for variable, old in zip(self._step_state(), before)]
        if self.non_finite == "skip":
            self.skipped_steps.update_state(1.0 - tf.cast(finite, tf.float32))
            return finite
        with tf.control_dependencies(restored):
            tf.debugging.Assert(finite, [NON_FINITE_MESSAGE, self.optimizer.iterations + 1, "loss:", loss])
        return finite

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
        try:
            return super().fit(x, y, validation_data=validation_data, **kwargs)
        except tf.errors.InvalidArgumentError as error:
            found = re.search(rf"{NON_FINITE_MESSAGE}\] \[(\d+)\] \[loss:\] \[([^\]]*)\]", error.message)
            if not found:
                raise
            raise FloatingPointError(
                f"{NON_FINITE_MESSAGE} {found.group(1)} (loss {found.group(2)}); training stopped with the "
                "weights from before that step. Lower the learning rate, clip the outer gradients "
                "(e.g. keras.optimizers.Adam(global_clipnorm=1.0), tfmeta train --clip-norm 1.0), check "
                "the data for NaN, or compile(non_finite='skip') to skip such steps."
            ) from None

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
