"""What every few-shot learner shares: a Keras model over meta-batches of episodes."""

import keras
import tensorflow as tf

from tfmeta.algorithms import episode_checks
from tfmeta.algorithms.keras_internals import SymbolicBuildForStrategies


NON_FINITE = ("stop", "skip")
NON_FINITE_MESSAGE = "Non-finite meta-loss or gradient at training step"

# What a compiled step records in `_fault` for `_raise_recorded_fault`:
# nothing, a non-finite step under non_finite="stop", or label problem k
# (code _FIRST_LABEL_FAULT + k, in the order of `label_problems`).
_NO_FAULT, _NON_FINITE_FAULT, _FIRST_LABEL_FAULT = 0, 1, 2


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

    Safety checks and XLA: XLA compiles `tf.debugging.Assert` away, so with
    `compile(jit_compile=True)` an assertion inside a training, evaluation or
    prediction step would never fire. The steps therefore compute what is
    wrong (a non-finite step, a label problem) as a tensor, record it in a
    variable, undo the step's changes with `tf.where`, and the Python code
    around each compiled function raises the error once it returns: the same
    errors, with or without XLA. (`call` also keeps its assertions, for
    graphs that are not compiled with XLA, such as the exported SavedModel.)
    """

    is_classifier = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Set past Keras's and TensorFlow's attribute tracking: not a weight,
        # not saved. ONLY_FIRST_REPLICA: every replica records the same fault.
        object.__setattr__(self, "_fault", tf.Variable(
            [_NO_FAULT, 0], dtype=tf.int64, trainable=False, name="fault",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA))
        object.__setattr__(self, "_fault_loss", tf.Variable(
            0.0, dtype=tf.float32, trainable=False, name="fault_loss",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA))
        object.__setattr__(self, "_label_messages", [])

    @property
    def example_shape(self):
        """Shape of one input example, or None if unknown."""
        raise NotImplementedError

    @property
    def example_dtype(self):
        """The `tf.DType` of input examples (`tf.string` for models of raw text); float32 by default."""
        return tf.float32

    def check_first_batch(self, batch):
        """Raises a `ValueError` naming what is wrong with the labels of a meta-batch."""
        raise NotImplementedError

    def label_problems(self, episodes):
        """Data-dependent label rules: a list of `(holds, message)`, `holds` a scalar boolean tensor."""
        return []

    def _label_checks(self, episodes):
        """`label_problems`, with the index of the first rule that fails (-1 if none) as a tensor."""
        problems = self.label_problems(episodes)
        object.__setattr__(self, "_label_messages", [message for _, message in problems])
        failing = -1
        for index in reversed(range(len(problems))):
            failing = tf.where(problems[index][0], failing, index)
        return problems, tf.cast(failing, tf.int64)

    def check_labels_in_graph(self, episodes):
        """Assertions of `label_problems`, each running after the previous one. Returns the ops."""
        checks = []
        for holds, message in self.label_problems(episodes):
            with tf.control_dependencies(checks[-1:]):
                checks.append(tf.debugging.Assert(holds, [message]))
        return checks

    def checked_episodes(self, episodes):
        """`episodes`, computed only after `check_labels_in_graph`'s assertions ran.

        Without the dependency, a kernel that validates labels itself (a
        cross-entropy) may fail first, with a less helpful message. Under
        XLA the assertions are dropped; the steps record label problems
        themselves (`_record_fault`).
        """
        with tf.control_dependencies(self.check_labels_in_graph(episodes)):
            return {key: tf.identity(value) for key, value in episodes.items()}

    # Faults: recorded by compiled steps, raised by the Python code around them.

    def _fault_pending(self):
        return tf.not_equal(self._fault[0], _NO_FAULT)

    def _label_fault_code(self, failing):
        """The fault code of label rule `failing` (-1: none), the same on every replica."""
        code = tf.where(failing >= 0, failing + _FIRST_LABEL_FAULT, _NO_FAULT)
        replica = tf.distribute.get_replica_context()
        if replica is None or replica.num_replicas_in_sync == 1 or not self._label_messages:
            return code
        # The first rule that fails on any replica.
        depth = len(self._label_messages) + _FIRST_LABEL_FAULT
        counts = replica.all_reduce(tf.distribute.ReduceOp.SUM,
                                    tf.one_hot(code, depth, dtype=tf.float32)[_FIRST_LABEL_FAULT:])
        failing = tf.where(tf.reduce_any(counts > 0), tf.argmax(tf.cast(counts > 0, tf.int32)), -1)
        return tf.where(failing >= 0, tf.cast(failing, tf.int64) + _FIRST_LABEL_FAULT, _NO_FAULT)

    def _record_fault(self, code, loss=0.0):
        """Records fault `code` (int64 scalar; 0: none) unless one is already pending."""
        optimizer = getattr(self, "optimizer", None)  # uncompiled models predict too
        step = optimizer.iterations + 1 if optimizer is not None else 0
        new = tf.logical_and(tf.not_equal(code, _NO_FAULT), tf.logical_not(self._fault_pending()))
        record = self._fault.assign(tf.where(new, tf.stack([code, tf.cast(step, tf.int64)]), self._fault))
        with tf.control_dependencies([record]):
            return self._fault_loss.assign(tf.where(new, tf.cast(loss, tf.float32), self._fault_loss))

    def _raise_recorded_fault(self):
        code, step = (int(value) for value in self._fault.numpy())
        if code == _NO_FAULT:
            return
        loss = float(self._fault_loss.numpy())
        self._fault.assign([_NO_FAULT, 0])
        if code == _NON_FINITE_FAULT:
            raise FloatingPointError(
                f"{NON_FINITE_MESSAGE} {step} (loss {loss}); training stopped with the weights from "
                "before that step. Lower the learning rate, clip the outer gradients "
                "(e.g. keras.optimizers.Adam(global_clipnorm=1.0), tfmeta train --clip-norm 1.0), check "
                "the data for NaN, or compile(non_finite='skip') to skip such steps."
            )
        raise tf.errors.InvalidArgumentError(None, None, self._label_messages[code - _FIRST_LABEL_FAULT])

    def _raising_recorded_faults(self, function):
        def checked(*args, **kwargs):
            outputs = function(*args, **kwargs)
            self._raise_recorded_fault()
            return outputs

        return checked

    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force)
        self.train_function = self._raising_recorded_faults(self.train_function)
        return self.train_function

    def make_test_function(self, force=False):
        if self.test_function is not None and not force:
            return self.test_function
        super().make_test_function(force)
        self.test_function = self._raising_recorded_faults(self.test_function)
        return self.test_function

    def make_predict_function(self, force=False):
        if self.predict_function is not None and not force:
            return self.predict_function
        super().make_predict_function(force)
        self.predict_function = self._raising_recorded_faults(self.predict_function)
        return self.predict_function

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
        if config:  # Keras gives {} for a model that was never compiled
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
            if y_pred.dtype in (tf.float16, tf.bfloat16):  # mixed precision: the loss in float32
                y_pred = tf.cast(y_pred, tf.float32)
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
        _, failing = self._label_checks(episodes)
        scores = self(episodes, training=False)
        counted = tf.less(failing, 0)
        with tf.control_dependencies([self._record_fault(self._label_fault_code(failing))]):
            loss = self.mean_loss(episodes["query_y"], scores)
        return self.update_metrics(loss, episodes["query_y"], scores, counted)

    def predict_step(self, data):
        episodes = self.episodes_of(data, need_query_y=False)
        _, failing = self._label_checks(episodes)
        with tf.control_dependencies([self._record_fault(self._label_fault_code(failing))]):
            return tf.identity(self(episodes, training=False))

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
        if not self.optimizer.built:  # its variables are part of the state (and a loss scale is read)
            self.optimizer.build(self.trainable_variables)
        return [tf.identity(variable.value) for variable in self._step_state()]

    def apply_update(self, loss, gradients, variables, before, tasks, assignments=(), label_failing=None):
        """The outer update, undone if it cannot be trusted.

        `gradients` are the mean over this replica's `tasks` tasks (scaled
        by the loss scale if the optimizer is a `LossScaleOptimizer`). Under
        a tf.distribute strategy they are weighed by this replica's share of
        all tasks, so that the optimizer's sum over replicas is the mean over
        the global meta-batch, as on one device; with gradient clipping
        (the optimizer's `clipnorm`, `global_clipnorm` or `clipvalue`), the
        summed gradient is clipped once, as on one device, not each
        replica's part. Applies them to `variables` and then `assignments`
        (variable, value pairs; float values, such as moving statistics,
        are this replica's mean over its tasks, and are reduced across
        replicas weighted by tasks).

        Every variable of the step returns to its value in `before`
        (`state_before_step`) when a label rule failed (`label_failing`, the
        index from `_label_checks`; then the step raises its error) or when
        the loss or a gradient is NaN or infinite on any replica (then
        `non_finite="stop"` raises a `FloatingPointError`, "skip" counts the
        step in `skipped_steps`). The exception: under a `LossScaleOptimizer`
        (mixed_float16), non-finite gradients with a finite loss while the
        loss scale is above 1 are an overflow of the scale, which the
        optimizer handles itself: it skips the update and halves its scale,
        which is kept; the rest of the step is undone. Returns whether the
        step counts in the metrics.
        """
        loss_finite = tf.reduce_all(tf.math.is_finite(loss))
        gradients_finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in gradients])
        failing = tf.constant(-1, tf.int64) if label_failing is None else label_failing
        replica = tf.distribute.get_replica_context()
        several = replica is not None and replica.num_replicas_in_sync > 1
        assignments = list(assignments)
        if several:
            local = tf.cast(tasks, tf.float32)
            share = local / replica.all_reduce(tf.distribute.ReduceOp.SUM, local)
            gradients = [gradient * tf.cast(share, gradient.dtype) for gradient in gradients]
            assignments = self._task_weighted_states(replica, share, assignments)
            failures = replica.all_reduce(tf.distribute.ReduceOp.SUM, tf.stack(
                [1.0 - tf.cast(loss_finite, tf.float32), 1.0 - tf.cast(gradients_finite, tf.float32)]))
            loss_finite, gradients_finite = tf.equal(failures[0], 0.0), tf.equal(failures[1], 0.0)
            gradients = self._clipped_once(replica, gradients)
        label_code = self._label_fault_code(failing)
        labels_hold = tf.equal(label_code, _NO_FAULT)
        usable = tf.logical_and(labels_hold, tf.logical_not(self._fault_pending()))
        finite = tf.logical_and(loss_finite, gradients_finite)
        scaled = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
        if scaled:
            scale_overflow = tf.logical_and(tf.logical_and(loss_finite, tf.logical_not(gradients_finite)),
                                            self.optimizer.dynamic_scale > 1.0)
            apply = tf.logical_and(usable, finite)
            # Non-finite gradients make the optimizer skip the update and halve its scale.
            gradients = [tf.where(apply, g, tf.constant(float("nan"), g.dtype)) for g in gradients]
        else:
            scale_overflow = tf.constant(False)
            apply = tf.logical_and(usable, finite)
        keep_scale = tf.logical_or(apply, tf.logical_and(usable, scale_overflow))
        own_scale = [self.optimizer.dynamic_scale, self.optimizer.step_counter] if scaled else []
        self.optimizer.apply(gradients, variables)
        for variable, value in assignments:
            variable.assign(value)
        restored = [variable.assign(tf.where(keep_scale if any(variable is v for v in own_scale) else apply,
                                             variable.value, old))
                    for variable, old in zip(self._step_state(), before)]
        fault = tf.logical_and(usable, tf.logical_not(tf.logical_or(finite, scale_overflow)))
        with tf.control_dependencies(restored):
            if self.non_finite == "skip":
                self.skipped_steps.update_state(tf.cast(fault, tf.float32))
                code = label_code
            else:
                code = tf.where(fault, tf.constant(_NON_FINITE_FAULT, tf.int64), label_code)
            recorded = self._record_fault(code, loss)
        with tf.control_dependencies([recorded]):
            return tf.logical_and(usable, tf.logical_or(finite, tf.logical_and(scale_overflow, loss_finite)))

    def _task_weighted_states(self, replica, share, assignments):
        """`assignments` with each float value replaced by its task-weighted mean over the replicas.

        A replica's float states (moving statistics) are the mean over its
        own tasks; each replica would assign its own to a variable that is
        mirrored without aggregation, and the copies would drift apart.
        Weighted by each replica's share of the tasks, their sum is the mean
        over the whole meta-batch, as on one device. Other states (random
        seeds) stay each replica's.
        """
        floating = [i for i, (_, value) in enumerate(assignments) if value.dtype.is_floating]
        if not floating:
            return assignments
        reduced = replica.all_reduce(tf.distribute.ReduceOp.SUM, [
            assignments[i][1] * tf.cast(share, assignments[i][1].dtype) for i in floating])
        assignments = list(assignments)
        for i, value in zip(floating, reduced):
            assignments[i] = (assignments[i][0], value)
        return assignments

    def _clip_settings(self):
        """The optimizer's (for a LossScaleOptimizer, its inner optimizer's) clipping: (kind, value) or None."""
        optimizer = self.optimizer
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = optimizer.inner_optimizer
        for kind in ("clipnorm", "global_clipnorm", "clipvalue"):  # Keras's order of precedence
            value = getattr(optimizer, kind, None)
            if value and value > 0:
                return kind, float(value)
        return None

    def _clipped_once(self, replica, gradients):
        """Replica gradients whose sum is the clipped sum of the unclipped ones.

        Keras optimizers clip each replica's gradients before summing them
        over replicas. Here the sum is taken first, clipped as the optimizer
        would (after unscaling by a loss scale), and each replica passes on
        its share `1/replicas`, whose norm is below the clipping threshold,
        so that the optimizer's own clipping leaves it unchanged.
        """
        settings = self._clip_settings()
        if settings is None:
            return gradients
        kind, value = settings
        total = replica.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
        scale = (tf.cast(self.optimizer.dynamic_scale, tf.float32)
                 if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer) else None)
        if scale is not None:
            total = [g / tf.cast(scale, g.dtype) for g in total]
        if kind == "clipnorm":
            total = [tf.clip_by_norm(g, value) for g in total]
        elif kind == "global_clipnorm":
            total, _ = tf.clip_by_global_norm(total, value)
        else:
            total = [tf.clip_by_value(g, -value, value) for g in total]
        if scale is not None:
            total = [g * tf.cast(scale, g.dtype) for g in total]
        replicas = replica.num_replicas_in_sync
        return [g / tf.cast(replicas, g.dtype) for g in total]

    def _check_data(self, data, need_query_y):
        """`data` after its checks, with NumPy arrays of strings as `tf.string` tensors (Keras takes no others)."""
        episode_checks.check_episode_data(
            data, self.example_shape, need_query_y, self.is_classifier,
            self.check_first_batch if self.is_classifier else None, self.example_dtype,
        )
        return episode_checks.strings_as_tensors(data)

    def fit(self, x=None, y=None, validation_data=None, **kwargs):
        x = self._check_data(x, need_query_y=True)
        if validation_data is not None:
            validation_data = self._check_data(validation_data, need_query_y=True)
        kwargs.setdefault("shuffle", False)  # episode streams are random already
        return super().fit(x, y, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, **kwargs):
        return super().evaluate(self._check_data(x, need_query_y=True), y, **kwargs)

    def predict(self, x, **kwargs):
        return super().predict(self._check_data(x, need_query_y=False), **kwargs)


def labels_below(episodes, keys, ways, what):
    """Label rules (see `EpisodicModel.label_problems`): labels under `keys` lie in `[0, ways)`."""
    problems = []
    for key in keys:
        if key not in episodes:
            continue
        labels = episodes[key]
        problems.append((tf.reduce_all(labels >= 0), f"{key} holds a negative label"))
        problems.append((tf.reduce_all(labels < tf.cast(ways, labels.dtype)),
                         f"{key} holds a label outside [0, {what})"))
    return problems
