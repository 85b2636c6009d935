"""Reptile (Nichol, Achiam, Schulman 2018): first-order meta-learning by moving towards the weights SGD finds."""

import keras
import tensorflow as tf

from tfmeta.algorithms import keras_internals
from tfmeta.algorithms.maml import MAML, _adapt, _is_random_state, predict_queries
from tfmeta.layers.batch_normalization import MetaBatchNormalization


def whole_task(task):
    """A task's support and query sets as one training set `(x, y)`: Reptile's inner loop trains on both."""
    return (tf.concat([task["support_x"], task["query_x"]], axis=0),
            tf.concat([task["support_y"], task["query_y"]], axis=0))


def inner_batches(x, y, steps, batch_size=None):
    """The `(x, y)` of each of `steps` inner steps: all of the examples, or successive batches of `batch_size`.

    The batches follow the examples' order and wrap around at the end, as
    Nichol et al.'s code takes successive mini-batches of a shuffled task
    (tfmeta's training episodes hold their examples in random order).
    """
    if batch_size is None:
        return [(x, y)] * steps
    size = tf.shape(x)[0]
    rows = [(tf.range(batch_size) + step * batch_size) % size for step in range(steps)]
    return [(tf.gather(x, r), tf.gather(y, r)) for r in rows]


# MAML's settings that mean nothing to Reptile, whose outer update is no gradient through the inner loop.
_MAML_ONLY = ("first_order", "learn_inner_lr", "allow_mixed_precision", "learn_per_step_inner_lr",
              "multi_step_loss_iterations", "first_order_iterations")


@keras.saving.register_keras_serializable(package="tfmeta")
class Reptile(MAML):
    """Reptile as a Keras model that trains with `fit` on the same meta-batches as `MAML`.

    Training: for each task of a meta-batch, `inner_steps` plain SGD steps
    (rate `inner_lr`) from the weights θ on the whole task (support and
    query sets together; each step on all of them, or on successive batches
    of `inner_batch_size`) give θ'_task. The outer
    optimizer then receives θ − mean_tasks(θ'_task) as the gradient: with
    `keras.optimizers.SGD(ε)` that is Reptile's update
    θ ← θ + ε (mean θ' − θ); Nichol et al. also hand it to Adam. No outer
    tape spans the inner steps: Reptile is first order by construction, and a
    step costs `inner_steps` forward and backward passes of each task (plus
    one forward pass of its queries for the reported loss and accuracy).
    Those are the query predictions after the inner steps, which trained on
    the queries too: a measure of fit, not of generalisation (validate with
    `evaluate`).

    Evaluation, prediction and serving adapt as MAML does: `eval_inner_steps`
    SGD steps on the support set alone, then the queries are predicted with
    the adapted weights (inside the exported graph too).

    The outer update undoes itself like MAML's on a non-finite step or bad
    labels (`compile(non_finite=...)`). A stock BatchNormalization's moving
    statistics are updated from the query passes. Per-step batch-norm
    weights (`MetaBatchNormalization(steps=...)`) are refused: Reptile's
    update would never change them.

    Args:
        backbone: a built Keras model mapping inputs to logits (or
            regression outputs).
        inner_lr: SGD step size of the inner loop, in training and at test.
        inner_steps: SGD steps on each training task (Nichol et al.: 5 on
            Omniglot).
        eval_inner_steps: SGD steps on the support set at evaluation,
            prediction and serving; defaults to `inner_steps` (Nichol et
            al.: 50 on Omniglot).
        loss: the task loss; as `MAML`'s.
        classifier: as `MAML`'s.
        inner_batch_size: examples per training inner step, successive
            batches of the task's examples wrapping around (Nichol et al.: 10
            on Omniglot); default: every step on the whole task.

    Reference:
        Nichol, Achiam, Schulman. On First-Order Meta-Learning Algorithms.
        arXiv:1803.02999, 2018.

    Example:
        >>> reptile = Reptile(tfmeta.models.omniglot_cnn(ways=5), inner_lr=0.1, inner_steps=5,
        ...                   eval_inner_steps=50)
        >>> reptile.compile(optimizer=keras.optimizers.SGD(1.0))
        >>> reptile.fit(train_episodes, steps_per_epoch=100, epochs=10)
    """

    def __init__(self, backbone, inner_lr=0.1, inner_steps=5, eval_inner_steps=None, loss=None,
                 classifier=None, inner_batch_size=None, **kwargs):
        given = sorted(set(kwargs) & set(_MAML_ONLY))
        if given:
            raise ValueError(f"Reptile has no {given}: its outer update follows the weights of plain SGD steps, "
                             f"with no gradient through them; received {given}.")
        if inner_batch_size is not None and (isinstance(inner_batch_size, bool) or not isinstance(
                inner_batch_size, int) or inner_batch_size < 1):
            raise ValueError(f"`inner_batch_size` must be None or a positive integer; received "
                             f"inner_batch_size={inner_batch_size!r}.")
        # Reptile trains only what its inner loop adapts: the normalization weights belong to it.
        if not kwargs.pop("adapt_normalization", True):
            raise ValueError("Reptile's outer update follows the weights of its inner steps, so weights left out "
                             "of them would never train; received adapt_normalization=False.")
        super().__init__(backbone, inner_lr=inner_lr, inner_steps=inner_steps, eval_inner_steps=eval_inner_steps,
                         first_order=True, loss=loss, classifier=classifier, adapt_normalization=True, **kwargs)
        per_step = [layer.name for layer in keras_internals.flatten_layers(backbone)
                    if isinstance(layer, MetaBatchNormalization) and layer.steps is not None]
        if per_step:
            raise ValueError(f"Reptile's inner loop adapts every weight, and per-step batch-norm weights (layers "
                             f"{per_step}) are left out of it, so Reptile would never train them; build the "
                             "backbone without per-step normalization (steps=None).")
        self.inner_batch_size = inner_batch_size

    def train_step(self, data):
        before = self.state_before_step()
        episodes = self.episodes_of(data)
        _, failing = self._label_checks(episodes)
        episodes = self.checked_episodes(episodes)
        variables = self.backbone.trainable_variables
        non_trainable = self.backbone.non_trainable_variables
        floating = [not _is_random_state(v) for v in non_trainable]
        count = len(variables)
        rates = self._learning_rates()

        def task_fn(task, totals):
            # The seed states run on from the previous task: each task draws fresh randomness.
            randoms = iter([total for total, is_float in zip(totals[1 + count:], floating) if not is_float])
            state = [next(randoms) if not is_float else tf.convert_to_tensor(v)
                     for v, is_float in zip(non_trainable, floating)]
            fast = [tf.convert_to_tensor(v) for v in variables]
            for x, y in inner_batches(*whole_task(task), self.inner_steps, self.inner_batch_size):
                fast, state = _adapt(self.backbone, fast, state, x, y, self.mean_loss, rates, 1, first_order=True)
            predictions, updates = predict_queries(self.backbone, fast, state, task["support_x"], task["query_x"],
                                                   self.inference, training=True)
            loss = self.mean_loss(task["query_y"], predictions)
            return predictions, [tf.cast(loss, tf.float32), *fast, *updates]

        def keep_last(_, value):
            return value

        # Sum the loss, fast weights and float states over tasks to average them; random states carry on.
        initial = [tf.zeros((), tf.float32)] + [tf.zeros(v.shape, v.dtype) for v in variables]
        initial += [tf.zeros(v.shape, v.dtype) if is_float else v.value for v, is_float in zip(non_trainable, floating)]
        combine = [tf.add] * (1 + count) + [tf.add if is_float else keep_last for is_float in floating]
        predictions, totals = self._over_tasks(episodes, task_fn, initial, combine)

        num_tasks = tf.shape(episodes["support_x"])[0]
        mean = [total / tf.cast(num_tasks, total.dtype) if fold is tf.add else total
                for fold, total in zip(combine, totals)]
        loss, mean_fast, updates = mean[0], mean[1:1 + count], mean[1 + count:]
        # A LossScaleOptimizer divides what it receives by its loss scale: hand it the scaled difference.
        scale = self.optimizer.scale_loss(tf.constant(1.0))
        gradients = [(v - fast) * tf.cast(scale, v.dtype) for v, fast in zip(variables, mean_fast)]
        counted = self.apply_update(loss, gradients, variables, before, num_tasks, zip(non_trainable, updates),
                                    label_failing=failing)
        return self.update_metrics(loss, episodes["query_y"], predictions, counted)

    def get_config(self):
        config = {**super().get_config(), "inner_batch_size": self.inner_batch_size}
        for key in (*_MAML_ONLY, "adapt_normalization"):
            config.pop(key, None)
        return config
