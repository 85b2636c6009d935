"""MAML: Model-Agnostic Meta-Learning (Finn et al. 2017), with fast weights that are used."""

import inspect
import numbers

import keras
import numpy as np
import tensorflow as tf

from tfmeta.algorithms import keras_internals
from tfmeta.algorithms.episodic_model import EpisodicModel, labels_below
from tfmeta.layers.batch_normalization import (MetaBatchNormalization, inner_step, split_rows, statistics_of_first,
                                                step_row)
from tfmeta.modes import INFERENCE_MODES

_ZERO = tf.UnconnectedGradients.ZERO


def _is_random_state(value):
    """Non-float non-trainable values are random states (Keras seed generators) and counters."""
    return not tf.as_dtype(value.dtype).is_floating


def _carried_states(model):
    """Which non-trainable values run on from pass to pass inside the inner loop.

    Random states (seed generators of Dropout and other random layers), so
    that each pass draws fresh randomness, and per-step moving statistics
    (`MetaBatchNormalization(per_step_statistics=True)`), each pass of which
    updates its own step's row. Other float states (a stock
    BatchNormalization's moving statistics) stay the given ones.
    """
    per_step = [v for layer in keras_internals.flatten_layers(model)
                if isinstance(layer, MetaBatchNormalization) and layer.per_step_statistics
                for v in (layer.moving_mean, layer.moving_variance)]
    return [_is_random_state(v) or any(v is w for w in per_step) for v in model.non_trainable_variables]


def _as_dtype(value, dtype):
    """`value` as a `dtype` tensor; a Python number is converted directly (a cast would round it to float32
    first: 0.4 would become 0.4000000059604645 in a float64 model)."""
    return tf.cast(value, dtype) if tf.is_tensor(value) else tf.constant(value, dtype)


def _rates_of_step(inner_lrs, step, count):
    """`adapt`'s `inner_lrs` at `step`: one rate (or None) for each of the `count` parameters."""
    rates = inner_lrs(step) if callable(inner_lrs) else inner_lrs
    if tf.is_tensor(rates) or isinstance(rates, np.ndarray):
        scalar = len(rates.shape) == 0
    else:
        scalar = isinstance(rates, numbers.Real) and not isinstance(rates, bool)
    if scalar:
        return [rates] * count
    if not isinstance(rates, (list, tuple)):
        raise ValueError(f"`inner_lrs` must be a number, a list of one rate (or None) per parameter, or a function "
                         f"of the step returning such a list; received inner_lrs={rates!r}.")
    if len(rates) != count:
        # A shorter list would leave the last parameters unadapted without a word.
        raise ValueError(f"`inner_lrs` has length {len(rates)} but `params` holds {count} parameters: give one "
                         f"rate (or None) per parameter, or a single number; received inner_lrs={rates!r}.")
    return rates


def _carry(carried, old, new):
    return [n if keep else o for keep, o, n in zip(carried, old, new)]


class PerStepRates:
    """`adapt`'s `inner_lrs` as a function of the step: row `step` of each parameter's per-step rates (later steps
    take the last row), for a Python int step or, in a `tf.while_loop` over the steps, a tensor one.

    Args:
        rates: one tensor of shape `[steps]` per parameter, or None for a
            parameter that is not adapted.
        steps: the number of rows.
    """

    def __init__(self, rates, steps):
        self.rates = rates
        self.steps = steps

    def __call__(self, step):
        return [None if lr is None else step_row(lr, step, self.steps) for lr in self.rates]


def _steps_can_loop(inner_lrs, training, after_step):
    """Whether the inner steps can run in a `tf.while_loop` (with a tensor step index) instead of unrolled.

    At inference with no callback, and rates fixed or `PerStepRates` (a
    user's function of the step may need a Python int): at Reptile's 50 test
    steps or MAML++'s per-step layers, a served graph a fraction of the
    size, loaded and optimized in a fraction of the time. Training stays
    unrolled (per-step statistics are updated pass by pass).
    """
    return training is False and after_step is None and (not callable(inner_lrs)
                                                          or isinstance(inner_lrs, PerStepRates))


def _adapt(model, params, non_trainable, support_x, support_y, loss_fn, inner_lrs, steps,
           first_order=False, training=True, after_step=None):
    """`adapt`, also returning the non-trainable values to run the model with next.

    `after_step(step, params, state)`, if given, runs after each inner step
    and returns the state to go on with (MAML++'s multi-step loss scores
    the queries there).
    """
    carried = _carried_states(model) if non_trainable else []

    def step_fn(step, params, state, rates):
        adapted = [i for i, lr in enumerate(rates) if lr is not None]
        # First order: the inner gradient is a constant of the meta-gradient. Taken at stopped copies of the
        # weights, neither the support pass nor its backward pass is recorded by an outer tape.
        at = [tf.stop_gradient(p) for p in params] if first_order else params
        with tf.GradientTape() as tape:
            tape.watch(at)
            with inner_step(step):
                predictions, updated = model.stateless_call(at, state, support_x, training=training)
            loss = loss_fn(support_y, predictions)
        gradients = tape.gradient(loss, [at[i] for i in adapted], unconnected_gradients=_ZERO)
        params = list(params)
        for i, gradient in zip(adapted, gradients):
            params[i] = params[i] - _as_dtype(rates[i], params[i].dtype) * gradient
        return params, _carry(carried, state, updated)

    params, state = list(params), list(non_trainable)
    if steps > 1 and _steps_can_loop(inner_lrs, training, after_step):
        def loop_step(step, params, state):
            return (step + 1, *step_fn(step, params, state, _rates_of_step(inner_lrs, step, len(params))))

        _, params, state = tf.while_loop(lambda *_: True, loop_step, (tf.constant(0), params, state),
                                         maximum_iterations=steps)
        return list(params), list(state)
    for step in range(steps):
        params, state = step_fn(step, params, state, _rates_of_step(inner_lrs, step, len(params)))
        if after_step is not None:
            state = after_step(step, params, state)
    return params, state


def _check_inference(inference):
    if inference not in INFERENCE_MODES:
        raise ValueError(f"`inference` must be one of {INFERENCE_MODES}; received inference={inference!r}.")


def normalizes_with_batch_statistics(model, training):
    """Whether a pass of `model` normalizes with its batch's moments (MetaBatchNormalization layers)."""
    return any(isinstance(layer, MetaBatchNormalization) and (training or not layer.per_step_statistics)
               for layer in keras_internals.flatten_layers(model))


def predict_queries(model, params, non_trainable, support_x, query_x, inference="per-query", training=True):
    """The model's predictions for a task's queries, run with `params`.

    `inference="per-query"`: the support set and the queries go through the
    model as one batch in which every `MetaBatchNormalization` layer
    normalizes with the support rows' moments (`statistics_of_first`), so a
    query's prediction depends on the support set and on that query alone:
    the same whether it is asked alone, with other queries, or in another
    order (MetaBN, Bronskill et al. 2020). `"transductive"`: the queries go
    through alone and are normalized with their own batch's moments, as in
    Finn et al.'s code; each prediction depends on every query of the batch.
    The two are the same pass for models without batch statistics.

    Returns:
        `(query_predictions, non_trainable_updates)`, as `stateless_call`.
    """
    _check_inference(inference)
    if inference == "transductive" or not normalizes_with_batch_statistics(model, training):
        return model.stateless_call(params, non_trainable, query_x, training=training)
    # A static support size keeps the split static (XLA needs it so).
    support_size = support_x.shape[0] if support_x.shape[0] is not None else tf.shape(support_x)[0]
    with statistics_of_first(support_size):
        predictions, updates = model.stateless_call(params, non_trainable, tf.concat([support_x, query_x], 0),
                                                    training=training)
    return split_rows(predictions, support_size)[1], updates


def adapt(model, params, non_trainable, support_x, support_y, loss_fn, inner_lrs, steps,
          first_order=False, training=True):
    """Fast weights after `steps` gradient steps on a task's support set.

    θ' = θ − α ∇θ L_support(θ), repeated `steps` times. The model's variables
    are never touched: the model runs on the given tensors through
    `stateless_call`, so when this runs under an outer `tf.GradientTape`
    that reads θ, the meta-gradient flows through every inner step (second
    order). `first_order=True` stops the inner gradients, giving
    first-order MAML: the meta-gradient is then the query gradient at θ'.
    Random layers (Dropout) draw fresh randomness at every step: their seed
    states in `non_trainable` advance from step to step.

    Args:
        model: a built Keras model.
        params: tensors in the order of `model.trainable_variables` (θ).
        non_trainable: tensors in the order of `model.non_trainable_variables`.
        support_x, support_y: the support set.
        loss_fn: `loss_fn(y_true, y_pred)` -> scalar.
        inner_lrs: one rate for every parameter (a number or a scalar
            tensor); or a list of one learning rate per parameter, as long
            as `params`: scalars, tensors of the parameter's shape
            (Meta-SGD), or None for a parameter that is not adapted (it
            stays θ); or a function of the step index (0-based) returning
            such a list (per-step rates, MAML++'s LSLR).
        steps: number of inner gradient steps (a Python int). The loop is
            unrolled, with step k's passes in `tfmeta.layers.inner_step(k)`
            for per-step layers; at inference (`training=False`), unless
            `inner_lrs` is a function other than `PerStepRates`, it runs in
            a `tf.while_loop` with a tensor step index, so a many-step graph
            stays small.
        first_order: take the inner gradients as constants: they are
            computed at stopped copies of the weights, so an outer tape
            records neither the support passes nor their backward passes.
        training: passed to the model's layers (dropout and the like).

    Returns:
        The list of fast-weight tensors θ'.
    """
    return _adapt(model, params, non_trainable, support_x, support_y, loss_fn, inner_lrs, steps,
                  first_order, training)[0]


def adapt_and_predict(model, params, non_trainable, episode, loss_fn, inner_lrs, steps,
                      first_order=False, training=True, inference="per-query"):
    """Predicts a task's queries with the fast weights adapted to its support set.

    MAML's per-task objective is `loss_fn(episode["query_y"], predictions)`:
    the query loss *with θ'*, not θ.

    Args: as `adapt`, with `episode` a dict holding one task's `support_x`,
        `support_y` and `query_x`, and `inference` as `predict_queries`'s.

    Returns:
        `(query_predictions, non_trainable_updates)`; the updates are the
        non-trainable values after the query pass: a stock
        BatchNormalization's moving statistics updated from the query set
        (starting from the given ones), and random layers' seed states
        advanced past every inner step and the query pass (pass them to the
        next task for fresh randomness).
    """
    fast, state = _adapt(model, params, non_trainable, episode["support_x"], episode["support_y"],
                         loss_fn, inner_lrs, steps, first_order, training)
    with inner_step(max(steps - 1, 0)):  # the step that produced the fast weights
        return predict_queries(model, fast, state, episode["support_x"], episode["query_x"], inference, training)


def adapt_and_predict_each_step(model, params, non_trainable, episode, loss_fn, inner_lrs, steps,
                                first_order=False, training=True, inference="per-query"):
    """Query predictions after every inner step, for MAML++'s multi-step loss.

    As `adapt_and_predict`, but the queries are also predicted after each
    earlier step (with that step's fast weights, in its `inner_step` scope,
    as in the official MAML++ code).

    Returns:
        `(predictions, non_trainable_updates)`: `predictions[k]` are the
        query predictions after k + 1 inner steps (so the last entry is
        `adapt_and_predict`'s); the updates are as `adapt_and_predict`'s.
    """
    if steps < 1:
        raise ValueError(f"Predicting after every inner step needs steps >= 1; received steps={steps!r}.")
    carried = _carried_states(model) if non_trainable else []
    predictions = []

    def score_queries(step, fast, state):
        if step == steps - 1:  # the last query pass comes after the loop, returning every update
            return state
        with inner_step(step):
            queries, updated = predict_queries(model, fast, state, episode["support_x"], episode["query_x"],
                                               inference, training)
        predictions.append(queries)
        return _carry(carried, state, updated)

    fast, state = _adapt(model, params, non_trainable, episode["support_x"], episode["support_y"],
                         loss_fn, inner_lrs, steps, first_order, training, after_step=score_queries)
    with inner_step(steps - 1):
        queries, updates = predict_queries(model, fast, state, episode["support_x"], episode["query_x"],
                                           inference, training)
    return [*predictions, queries], updates


def multi_step_loss_weights(steps, iteration, annealing_iterations, dtype=tf.float32):
    """MAML++'s weights of the query losses after each inner step, at outer iteration `iteration`.

    The official code's `get_per_step_loss_importance_vector` with its epoch
    counted as the fraction of the annealing done, `iteration /
    annealing_iterations` (times its `multi_step_loss_num_epochs`): every
    step starts at weight 1/steps; the earlier steps' weights fall linearly
    to a floor of 0.03/steps while the last step's rises, summing to 1; from
    `annealing_iterations` on, the last step alone counts (weights
    [0, ..., 0, 1]).

    Args:
        steps: the number of inner steps (a Python int >= 1).
        iteration: the 0-based outer iteration (an int or an integer tensor).
        annealing_iterations: the iterations over which the weights anneal.
        dtype: the weights' float dtype (the loss's).

    Returns:
        A tensor `[steps]`.

    Reference:
        Antoniou, Edwards, Storkey. How to train your MAML. ICLR 2019,
        section 4 (multi-step loss optimization).
    """
    progress = tf.cast(iteration, dtype) / tf.cast(annealing_iterations, dtype)
    floor = 0.03 / steps
    earlier = tf.maximum((1.0 - progress) / steps, floor)
    last = tf.minimum(1.0 / steps + (steps - 1) / steps * progress, 1.0 - (steps - 1) * floor)
    weights = tf.concat([tf.fill([steps - 1], earlier), last[tf.newaxis]], axis=0)
    return tf.where(progress < 1.0, weights, tf.one_hot(steps - 1, steps, dtype=dtype))


# MAML++'s Omniglot configuration (the official experiment_config/omniglot_maml++-*.json): 100
# epochs of 500 iterations, the multi-step loss annealed over the first 10 epochs.
MAML_PLUS_PLUS_INNER_STEPS = 5
MAML_PLUS_PLUS_INNER_LR = 0.1
MAML_PLUS_PLUS_ANNEALED_FRACTION = 10 / 100


def maml_plus_plus_config(iterations):
    """`MAML`'s arguments for MAML++'s combination over a run of `iterations` outer iterations.

    5 inner steps in training and evaluation, learned per-layer per-step
    inner rates initialised to 0.1, and the multi-step loss annealed over the
    first tenth of the run: the paper trains 100 epochs and anneals over the
    first 10, so its epochs map to `iterations / 100` outer iterations each.
    Second order from the start, as the official Omniglot configurations.
    What MAML++ adds outside `MAML`: the backbone's per-step batch-norm
    weights for the same 5 steps (`tfmeta.models.omniglot_cnn(ways,
    pooling="max", norm_steps=5)`: the official code max-pools, and it
    normalizes with each batch's statistics) and Adam 1e-3
    annealed to 1e-5 along a cosine over the run
    (`keras.optimizers.schedules.CosineDecay(1e-3, iterations, alpha=0.01)`).

    Args:
        iterations: the number of outer iterations the run trains.

    Returns:
        A dict of keyword arguments for `MAML`.

    Example:
        >>> backbone = tfmeta.models.omniglot_cnn(5, pooling="max", norm_steps=5)
        >>> maml = tfmeta.MAML(backbone, **maml_plus_plus_config(iterations=10000))
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"`iterations` must be a positive integer; received iterations={iterations!r}.")
    return {
        "inner_lr": MAML_PLUS_PLUS_INNER_LR,
        "inner_steps": MAML_PLUS_PLUS_INNER_STEPS,
        "eval_inner_steps": MAML_PLUS_PLUS_INNER_STEPS,
        "learn_per_step_inner_lr": True,
        "multi_step_loss_iterations": max(1, round(iterations * MAML_PLUS_PLUS_ANNEALED_FRACTION)),
    }


def _check_steps(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative integer; received {name}={value!r}.")


# Keras layers whose second-order gradient is wrong (statistics through
# tf.nn.moments, whose variance stops the gradient through the mean), the
# tfmeta layer to use instead, and how it differs from the Keras layer.
_SAME = "same arguments, weights and outputs"
_INEXACT_SECOND_ORDER = (
    (keras.layers.BatchNormalization, "tfmeta.layers.MetaBatchNormalization",
     "not an equivalent: it normalizes with the batch's statistics in inference too, without moving mean and "
     "variance, as Finn et al.'s MAML does; its only weights are gamma and beta; of BatchNormalization's "
     "arguments it takes axis, epsilon, center and scale, not the initializers, regularizers, constraints or "
     "synchronized, and its momentum serves per_step_statistics only"),
    (keras.layers.LayerNormalization, "tfmeta.layers.MetaLayerNormalization", _SAME),
    (keras.layers.GroupNormalization, "tfmeta.layers.MetaGroupNormalization", _SAME),
)


def _inexact_second_order_layers(model):
    """`{layer name: exact replacement}` for the layers of `model` (nested ones too) that break second order."""
    from tfmeta.layers import MetaGroupNormalization, MetaLayerNormalization

    found = {}
    for layer in keras_internals.flatten_layers(model):
        if isinstance(layer, (MetaLayerNormalization, MetaGroupNormalization)):
            continue
        if isinstance(layer, keras.layers.LayerNormalization) and getattr(layer, "rms_scaling", False):
            continue  # Keras's rms path takes tf.math.reduce_variance, which keeps the gradient
        for cls, replacement, _ in _INEXACT_SECOND_ORDER:
            if isinstance(layer, cls):
                found[layer.name] = replacement
    return found


def _replacements(inexact):
    """What to replace each group of `{layer name: replacement}` with, and how the replacement differs."""
    parts = []
    for _, replacement, difference in _INEXACT_SECOND_ORDER:
        names = [name for name, found in inexact.items() if found == replacement]
        if names:
            parts.append(f"layers {names} with {replacement} ({difference})")
    return "; ".join(parts)


_NORMALIZATION_LAYERS = (MetaBatchNormalization, keras.layers.BatchNormalization, keras.layers.LayerNormalization,
                         keras.layers.GroupNormalization)


def normalization_weights(model):
    """The trainable weights (scales and offsets) of the normalization layers of `model`, nested ones too."""
    return [w for layer in keras_internals.flatten_layers(model) if isinstance(layer, _NORMALIZATION_LAYERS)
            for w in layer.trainable_weights]


_REGRESSION_LOSSES = (
    keras.losses.MeanSquaredError, keras.losses.MeanAbsoluteError, keras.losses.MeanSquaredLogarithmicError,
    keras.losses.MeanAbsolutePercentageError, keras.losses.Huber, keras.losses.LogCosh,
)
_REGRESSION_FUNCTIONS = (
    keras.losses.mean_squared_error, keras.losses.mean_absolute_error, keras.losses.mean_squared_logarithmic_error,
    keras.losses.mean_absolute_percentage_error, keras.losses.huber, keras.losses.log_cosh,
)


def _loss_name(loss):
    return getattr(loss, "__name__", None) or type(loss).__name__


def _from_logits(loss):
    """A loss's `from_logits` setting, or None if it has none."""
    if isinstance(loss, keras.losses.Loss):
        return loss.get_config().get("from_logits")
    try:
        parameter = inspect.signature(loss).parameters.get("from_logits")
    except (TypeError, ValueError):
        return None
    return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default


def resolve_task_loss(loss, classifier):
    """`(loss, classifier)`: the task loss as an object or function, and whether MAML classifies.

    `loss=None` is sparse categorical cross-entropy on logits (a
    classifier). A loss by name resolves with `keras.losses.get`. Whether the
    model is a classifier (integer labels, accuracy, label checks, served as
    probabilities) or a regressor comes from `classifier` if given, else from
    the loss: sparse categorical cross-entropy classifies; mean squared or
    absolute error, Huber, log-cosh and the like regress; any other loss
    needs `classifier=`. The backbone outputs logits, so a loss set to take
    probabilities (`from_logits=False`, the default of the losses by name)
    is refused.
    """
    if loss is None:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    given = loss
    if isinstance(loss, (str, dict)):
        loss = keras.losses.get(loss)
    if not callable(loss):
        raise ValueError(f"`loss` must be a Keras loss, its name, or a function; received loss={given!r}.")
    if _from_logits(loss) is False:
        raise ValueError(
            f"loss={given!r} takes probabilities (from_logits=False), but MAML's backbone outputs logits "
            "(tfmeta models return logits, and serving applies softmax to them). Pass "
            "keras.losses.SparseCategoricalCrossentropy(from_logits=True), and no softmax in the backbone."
        )
    sparse = (isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
              or loss is keras.losses.sparse_categorical_crossentropy)
    regression = isinstance(loss, _REGRESSION_LOSSES) or any(loss is f for f in _REGRESSION_FUNCTIONS)
    if classifier is None:
        if not (sparse or regression):
            raise ValueError(
                f"Cannot tell whether loss={given!r} ({_loss_name(loss)}) is for classification or regression; "
                "pass classifier=True (integer labels in [0, ways), logits; accuracy and label checks) or "
                "classifier=False (regression targets)."
            )
        classifier = sparse
    if not isinstance(classifier, bool):
        raise ValueError(f"`classifier` must be True, False or None; received classifier={classifier!r}.")
    if classifier and regression:
        raise ValueError(f"loss={given!r} is a regression loss; a classifier (classifier=True) needs a "
                         "classification loss such as SparseCategoricalCrossentropy(from_logits=True).")
    if not classifier and sparse:
        raise ValueError(f"loss={given!r} is a classification loss; classifier=False needs a regression loss.")
    return loss, classifier


@keras.saving.register_keras_serializable(package="tfmeta")
class MAML(EpisodicModel):
    """Model-Agnostic Meta-Learning as a Keras model that trains with `fit`.

    Wraps any built Keras backbone. Each element of the training data is a
    meta-batch of episodes (a dict of `support_x`, `support_y`, `query_x`,
    `query_y` with a leading task axis, as `tfmeta.data.episodes(...,
    meta_batch_size=...)` yields). For each task, the backbone's weights θ are
    adapted on the support set by `inner_steps` gradient steps into fast
    weights θ', and the task's query loss is taken *with θ'*; the outer
    optimizer then steps on the mean query loss over tasks. The per-task
    gradients are accumulated inside one compiled graph loop, so memory stays
    flat in the meta-batch size.

    Batch normalization: use `tfmeta.layers.MetaBatchNormalization` (as the
    provided backbones do). It normalizes with batch statistics in training
    and evaluation, as Finn et al. did, and its second-order gradient is
    exact: each support pass with the support set's own, each query pass
    with the support set's at the adapted weights (`inference="per-query"`)
    or with the query set's own (`inference="transductive"`).
    Keras's `BatchNormalization`, `LayerNormalization` and
    `GroupNormalization` get the second-order meta-gradient wrong (their
    variance stops the gradient through the mean), so they are refused
    unless `first_order=True`; `tfmeta.layers.MetaLayerNormalization` and
    `MetaGroupNormalization` are exact drop-in replacements for the latter
    two. With first order, a stock BatchNormalization's moving statistics
    are updated from the query passes (averaged over the tasks of a
    meta-batch) and used in evaluation.

    Random layers (Dropout, GaussianNoise): with `training=True` each inner
    step, each query pass and each task draws fresh randomness; evaluation
    and prediction run with `training=False`, without any.

    Args:
        backbone: a built Keras model (known input shape) mapping inputs to
            predictions (logits for classification).
        inner_lr: step size α of the inner loop.
        inner_steps: inner steps while meta-training.
        eval_inner_steps: inner steps in `evaluate` and `predict`; defaults to
            `inner_steps`. Finn et al. trained with 1-5 and tested with up to 10.
        first_order: first-order MAML (no gradient through inner gradients).
        learn_inner_lr: learn one inner learning rate per parameter entry,
            initialised to `inner_lr` (Meta-SGD, Li et al. 2017).
        loss: the task loss, used in the inner and the outer loop: a Keras
            loss, its name, or a function. Default: sparse categorical
            cross-entropy on logits; `keras.losses.MeanSquaredError()` (or
            "mse") for regression. Losses that take probabilities
            (`from_logits=False`, the default of the cross-entropies by name)
            are refused: the backbone outputs logits.
        classifier: whether the model classifies (integer labels, logits;
            accuracy, label checks, served as probabilities) or regresses.
            Default: decided from the loss (`resolve_task_loss`); required
            for a loss tfmeta does not know.
        allow_mixed_precision: train second-order MAML with a backbone that
            computes in a mixed dtype policy. Refused by default: the
            meta-gradient can be tens of percent off float32 (docs/maml.md,
            'Mixed precision'); first-order MAML is always allowed.
        learn_per_step_inner_lr: learn one inner learning rate per parameter
            tensor and inner step, initialised to `inner_lr` (MAML++'s LSLR);
            evaluation steps past `inner_steps` use the last step's rates.
            Not together with `learn_inner_lr`.
        multi_step_loss_iterations: N: for the first N outer iterations the
            meta-loss is a weighted sum of the query losses after every inner
            step, the weights annealed towards the last step
            (`multi_step_loss_weights`); then the last step's loss alone
            (MAML++'s multi-step loss). Default: the last step's loss.
        first_order_iterations: N: first order for the first N outer
            iterations, then second order (MAML++'s derivative-order
            annealing). The training step is traced again once, at the
            switch. Not together with `first_order=True`.
        inference: how the queries of a task are normalized, in training,
            evaluation, prediction and serving alike. `"per-query"` (the
            default): with the support set's batch statistics at the adapted
            weights, so a query's prediction depends only on the support set
            and that query (MetaBN, Bronskill et al. 2020). `"transductive"`:
            with the statistics of the queries' own batch, as Finn et al.
            and MAML++ evaluate; a prediction then changes with the other
            queries sent with it. See `predict_queries`.
        adapt_normalization: whether the inner loop adapts the scale and
            offset of the normalization layers (MetaBatchNormalization and
            Keras's BatchNormalization, LayerNormalization,
            GroupNormalization and their tfmeta counterparts). Off by
            default, as in Finn et al.'s code (its batch norm's variables
            are not among the fast weights) and MAML++'s Omniglot
            configurations: they are meta-learned by the outer loop alone.
            Models saved before this option existed load with it on, as
            they were trained.

    MAML++'s per-step batch-norm weights and statistics are a property of the
    backbone's layers: `tfmeta.layers.MetaBatchNormalization(steps=inner_steps,
    per_step_statistics=True)`; MAML leaves their per-step weights out of the
    inner loop and meta-learns them. `maml_plus_plus_config` gives the paper's
    combination.

    Reference:
        Finn, Abbeel, Levine. Model-Agnostic Meta-Learning for Fast Adaptation
        of Deep Networks. ICML 2017. Li, Zhou, Chen, Li. Meta-SGD: Learning to
        Learn Quickly for Few-Shot Learning. arXiv:1707.09835, 2017.
        Antoniou, Edwards, Storkey. How to train your MAML. ICLR 2019.

    Example:
        >>> backbone = tfmeta.models.omniglot_cnn(ways=5)
        >>> maml = MAML(backbone, inner_lr=0.4, inner_steps=1)
        >>> maml.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> maml.fit(train_episodes, steps_per_epoch=100, epochs=10,
        ...          validation_data=val_episodes)
    """

    def __init__(self, backbone, inner_lr=0.4, inner_steps=1, eval_inner_steps=None,
                 first_order=False, learn_inner_lr=False, loss=None, classifier=None,
                 allow_mixed_precision=False, learn_per_step_inner_lr=False, multi_step_loss_iterations=None,
                 first_order_iterations=None, inference="per-query", adapt_normalization=False, **kwargs):
        super().__init__(**kwargs)
        _check_inference(inference)
        if not isinstance(adapt_normalization, bool):
            raise ValueError(f"`adapt_normalization` must be True or False; received "
                             f"adapt_normalization={adapt_normalization!r}.")
        if not isinstance(backbone, keras.Model):
            raise ValueError(f"`backbone` must be a keras.Model; received {type(backbone).__name__}.")
        if not backbone.built or not backbone.weights:
            raise ValueError(
                f"`backbone` {backbone.name!r} must be built with weights; give it an input "
                "shape (keras.Input) or call it on data first."
            )
        if isinstance(inner_lr, bool) or not isinstance(inner_lr, numbers.Real) or inner_lr < 0:
            raise ValueError(f"`inner_lr` must be a non-negative number; received inner_lr={inner_lr!r}.")
        _check_steps("inner_steps", inner_steps)
        inexact = _inexact_second_order_layers(backbone)
        if not first_order and inexact:
            raise ValueError(
                "Keras's BatchNormalization, LayerNormalization and GroupNormalization compute their "
                "variance with a stopped gradient (tf.nn.moments), which makes second-order MAML's "
                f"meta-gradient wrong. Replace {_replacements(inexact)}; or pass first_order=True, whose "
                "gradients they get right."
            )
        mixed = sorted({layer.dtype_policy.name for layer in keras_internals.flatten_layers(backbone)
                        if layer.dtype_policy.name.startswith("mixed_")})
        if mixed and not first_order and not allow_mixed_precision:
            raise ValueError(
                f"The backbone computes in {' and '.join(mixed)}, and second-order MAML's meta-gradient is "
                "much less precise there than a plain gradient: on tfmeta's Omniglot CNN it was 33% "
                "(mixed_float16) and 56% (mixed_bfloat16) off float32 (docs/maml.md, 'Mixed precision'). "
                "Build the backbone under the float32 policy, pass first_order=True (its meta-gradient is a "
                "plain gradient), or pass allow_mixed_precision=True once you have measured your model "
                "(tests/test_mixed_precision.py shows how)."
            )
        self.backbone = backbone
        self.allow_mixed_precision = bool(allow_mixed_precision)
        self.inner_lr = float(inner_lr)
        self.inner_steps = inner_steps
        self.eval_inner_steps = inner_steps if eval_inner_steps is None else eval_inner_steps
        self.first_order = bool(first_order)
        self.learn_inner_lr = bool(learn_inner_lr)
        self.task_loss, self._classifier = resolve_task_loss(loss, classifier)
        self._check_maml_plus_plus_options(learn_per_step_inner_lr, multi_step_loss_iterations,
                                           first_order_iterations)
        self.learn_per_step_inner_lr = bool(learn_per_step_inner_lr)
        self.multi_step_loss_iterations = multi_step_loss_iterations
        self.first_order_iterations = first_order_iterations
        self.inference = inference
        self.adapt_normalization = adapt_normalization
        self._adapted = self._inner_loop_mask(backbone)
        adapted = [v for v, is_adapted in zip(backbone.trainable_variables, self._adapted) if is_adapted]
        self.inner_lrs = [
            self.add_weight(shape=v.shape, initializer=keras.initializers.Constant(self.inner_lr),
                            name=f"inner_lr_{v.path.replace('/', '_')}", dtype=v.dtype)
            for v in adapted
        ] if self.learn_inner_lr else None
        self.per_step_inner_lrs = [
            self.add_weight(shape=(inner_steps,), initializer=keras.initializers.Constant(self.inner_lr),
                            name=f"per_step_inner_lr_{v.path.replace('/', '_')}", dtype=v.dtype)
            for v in adapted
        ] if self.learn_per_step_inner_lr else None
        object.__setattr__(self, "_traced_phase", None)
        self.built = True

    def _inner_loop_mask(self, backbone):
        """Whether the inner loop adapts each of `backbone.trainable_variables` (ANIL narrows it to the head)."""
        # Per-step batch-norm weights are meta-learned only, as in the official MAML++ code; so are all
        # normalization weights unless adapt_normalization.
        outer_only = [w for layer in keras_internals.flatten_layers(backbone)
                      if isinstance(layer, MetaBatchNormalization) for w in layer.per_step_weights]
        if not self.adapt_normalization:
            outer_only += normalization_weights(backbone)
        return [not any(v is w for w in outer_only) for v in backbone.trainable_variables]

    def _check_maml_plus_plus_options(self, learn_per_step_inner_lr, multi_step_loss_iterations,
                                      first_order_iterations):
        for name, value in (("multi_step_loss_iterations", multi_step_loss_iterations),
                            ("first_order_iterations", first_order_iterations)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"`{name}` must be None or a positive number of outer iterations; "
                                 f"received {name}={value!r}.")
        if learn_per_step_inner_lr and self.learn_inner_lr:
            raise ValueError(
                "learn_inner_lr=True (Meta-SGD: one learned rate per parameter entry, shared by all steps) and "
                "learn_per_step_inner_lr=True (MAML++'s LSLR: one learned rate per parameter tensor and step) "
                "are two ways to learn the inner rates; choose one. Received both.")
        if (learn_per_step_inner_lr or multi_step_loss_iterations is not None) and self.inner_steps < 1:
            raise ValueError(f"learn_per_step_inner_lr and multi_step_loss_iterations need inner steps; "
                             f"received inner_steps={self.inner_steps}.")
        if first_order_iterations is not None and self.first_order:
            raise ValueError(
                f"first_order=True trains first order throughout, first_order_iterations={first_order_iterations} "
                "switches from first to second order after that many iterations; pass one of them.")
        for layer in keras_internals.flatten_layers(self.backbone):
            if isinstance(layer, MetaBatchNormalization) and layer.steps not in (None, self.inner_steps):
                raise ValueError(
                    f"MetaBatchNormalization layer {layer.name!r} has per-step weights for steps={layer.steps} "
                    f"inner steps, but MAML trains with inner_steps={self.inner_steps}; build the backbone with "
                    f"steps={self.inner_steps}.")

    @property
    def eval_inner_steps(self):
        return self._eval_inner_steps

    @eval_inner_steps.setter
    def eval_inner_steps(self, steps):
        _check_steps("eval_inner_steps", steps)
        self._eval_inner_steps = steps
        # The number of steps is baked into the compiled functions.
        self.test_function = None
        self.predict_function = None

    @property
    def is_classifier(self):
        """Whether the model classifies (integer labels, logits) or regresses; see `resolve_task_loss`."""
        return self._classifier

    def _learning_rates(self):
        """`adapt`'s `inner_lrs`: a list, or a function of the step for per-step rates."""
        if self.learn_per_step_inner_lr:
            per_step = iter([tf.convert_to_tensor(lr) for lr in self.per_step_inner_lrs])
            return PerStepRates([next(per_step) if is_adapted else None for is_adapted in self._adapted],
                                self.inner_steps)
        if self.learn_inner_lr:
            learned = iter([tf.convert_to_tensor(lr) for lr in self.inner_lrs])
            return [next(learned) if is_adapted else None for is_adapted in self._adapted]
        return [self.inner_lr if is_adapted else None for is_adapted in self._adapted]

    def _adapt_and_predict(self, task, steps, training, random_state, first_order=None, each_step=False,
                           inference=None):
        """One task's query predictions and non-trainable updates; `random_state` holds the seed states.

        With `each_step`, the predictions are a list, after each inner step.
        `inference` defaults to the model's.
        """
        predict = adapt_and_predict_each_step if each_step else adapt_and_predict
        return predict(
            self.backbone, *self._backbone_values(random_state), task, self.mean_loss, self._learning_rates(), steps,
            self.first_order if first_order is None else first_order, training,
            self.inference if inference is None else inference,
        )

    def _backbone_values(self, random_state):
        """`(params, non_trainable)`: the backbone's variables as tensors, its seed states from `random_state`."""
        randoms = iter(random_state)
        return ([tf.convert_to_tensor(v) for v in self.backbone.trainable_variables],
                [next(randoms) if _is_random_state(v) else tf.convert_to_tensor(v)
                 for v in self.backbone.non_trainable_variables])

    def training_phase(self, iteration):
        """`(multi_step_loss, second_order)`: how outer iteration `iteration` (0-based) trains."""
        multi_step = self.multi_step_loss_iterations is not None and iteration < self.multi_step_loss_iterations
        second_order = not self.first_order and (self.first_order_iterations is None
                                                 or iteration >= self.first_order_iterations)
        return multi_step, second_order

    def make_train_function(self, force=False):
        """The compiled training step, traced for the current training phase.

        The multi-step loss and derivative-order annealing change what the
        step computes at set iterations: each call checks the phase of the
        optimizer's iteration, and the step is traced again, once, when it
        changes.
        """
        if self.train_function is not None and not force:
            return self.train_function
        phase = self.training_phase(int(self.optimizer.iterations.numpy()))
        object.__setattr__(self, "_traced_phase", phase)
        compiled = super().make_train_function(force=True)
        if self.multi_step_loss_iterations is None and self.first_order_iterations is None:
            return compiled

        def train_function(*args, **kwargs):
            if self.training_phase(int(self.optimizer.iterations.numpy())) != phase:
                return self.make_train_function(force=True)(*args, **kwargs)
            return compiled(*args, **kwargs)

        self.train_function = train_function
        return train_function

    def _random_variables(self):
        """The backbone's seed states (and other non-float states), carried from task to task."""
        return [v for v in self.backbone.non_trainable_variables if _is_random_state(v)]

    def _output_dtype(self):
        try:
            return tf.as_dtype(self.backbone.output.dtype)
        except (AttributeError, ValueError):  # not a functional model, or several outputs
            return tf.as_dtype(self.backbone.compute_dtype)

    @property
    def example_shape(self):
        return tuple(self.backbone.input_shape[1:])

    @property
    def ways(self):
        """The backbone's output width: the number of classes it can tell apart."""
        return self.backbone.output_shape[-1]

    def check_first_batch(self, batch):
        support_y = batch["support_y"]
        if support_y.min() < 0 or support_y.max() >= self.ways:
            raise ValueError(
                f"support_y holds labels in [{support_y.min()}, {support_y.max()}], outside "
                f"[0, ways={self.ways}) (the backbone's output width)."
            )
        present = [sorted(set(labels.tolist())) for labels in support_y]
        counts = {len(labels) for labels in present}
        if len(counts) == 1 and all(labels == list(range(len(labels))) for labels in present):
            ways = counts.pop()  # every task holds exactly 0..ways-1: the episodes are ways-way
            if ways != self.ways:
                raise ValueError(
                    f"The backbone outputs {self.ways} logits but the episodes are {ways}-way (every task's "
                    f"support labels are 0..{ways - 1}); build the backbone with ways={ways} outputs."
                )
        for t, labels in enumerate(present):
            missing = sorted(set(range(self.ways)) - set(labels))
            if missing:
                raise ValueError(
                    f"Task {t}'s support_y has no example of class(es) {missing}: every class 0..{self.ways - 1} "
                    f"of the backbone's {self.ways} outputs needs a support example in every task; received "
                    f"support labels {labels}."
                )

    def label_problems(self, episodes):
        # Data-dependent, so checked in the graph: a label outside the
        # backbone's outputs would silently train on garbage, and a class
        # without support examples would be predicted unadapted.
        if not self.is_classifier:
            return []
        problems = labels_below(episodes, ("support_y", "query_y"), self.ways,
                                f"ways={self.ways}) (the backbone's output width")
        present = tf.reduce_max(tf.one_hot(episodes["support_y"], self.ways, dtype=tf.int32), axis=-2)
        problems.append((tf.reduce_all(present > 0),
                         f"support_y: a class has no support example in some task; every class 0..{self.ways - 1} "
                         f"(ways={self.ways}, the backbone's output width) needs one in every task"))
        return problems

    def _over_tasks(self, episodes, task_fn, initial, combine):
        """Runs `task_fn` on each task in a graph loop.

        `task_fn(task, totals)` returns `(predictions, values)`; each value is
        folded into its running total with the matching `combine` function.
        Returns the stacked per-task predictions and the totals.
        """
        num_tasks = tf.shape(episodes["support_x"])[0]

        def body(t, predictions, totals):
            task = {key: value[t] for key, value in episodes.items()}
            task_predictions, values = task_fn(task, totals)
            totals = [fold(total, value) for fold, total, value in zip(combine, totals, values)]
            return t + 1, predictions.write(t, task_predictions), totals

        # Keras compiles steps without AutoGraph, hence the explicit loop.
        _, predictions, totals = tf.while_loop(
            lambda t, *_: t < num_tasks,
            body,
            (tf.constant(0), tf.TensorArray(self._output_dtype(), size=num_tasks), initial),
        )
        return predictions.stack(), totals

    def train_step(self, data):
        before = self.state_before_step()
        episodes = self.episodes_of(data)
        _, failing = self._label_checks(episodes)
        episodes = self.checked_episodes(episodes)
        variables = self.trainable_variables
        non_trainable = self.backbone.non_trainable_variables
        floating = [not _is_random_state(v) for v in non_trainable]
        count = len(variables)
        multi_step, second_order = self._traced_phase or self.training_phase(0)

        def task_fn(task, totals):
            # The seed states run on from the previous task: each task draws fresh randomness.
            random_state = [total for total, is_float in zip(totals[1 + count:], floating) if not is_float]
            with tf.GradientTape() as tape:
                predictions, updates = self._adapt_and_predict(task, self.inner_steps, True, random_state,
                                                               first_order=not second_order, each_step=multi_step)
                if multi_step:
                    losses = tf.stack([self.mean_loss(task["query_y"], p) for p in predictions])
                    weights = multi_step_loss_weights(self.inner_steps, self.optimizer.iterations,
                                                      self.multi_step_loss_iterations, losses.dtype)
                    loss = tf.reduce_sum(weights * losses)
                    predictions = predictions[-1]
                else:
                    loss = self.mean_loss(task["query_y"], predictions)
                # A LossScaleOptimizer (mixed_float16) scales the loss here and
                # unscales the gradients in apply(); apply_update lets it
                # handle its overflows. The inner loop is not scaled (see
                # docs/maml.md, mixed precision).
                scaled_loss = self.optimizer.scale_loss(loss)
            gradients = tape.gradient(scaled_loss, variables, unconnected_gradients=_ZERO)
            return predictions, [tf.cast(loss, tf.float32), *gradients, *updates]

        # Sum the loss, gradients and float states (moving statistics) over
        # tasks to average them; random states carry the last task's on.
        def keep_last(_, value):
            return value

        initial = [tf.zeros((), tf.float32)] + [tf.zeros(v.shape, v.dtype) for v in variables]
        initial += [tf.zeros(v.shape, v.dtype) if is_float else v.value
                    for v, is_float in zip(non_trainable, floating)]
        combine = [tf.add] * (1 + count)
        combine += [tf.add if is_float else keep_last for is_float in floating]
        predictions, totals = self._over_tasks(episodes, task_fn, initial, combine)

        num_tasks = tf.shape(episodes["support_x"])[0]
        mean = [total / tf.cast(num_tasks, total.dtype) if fold is tf.add else total
                for fold, total in zip(combine, totals)]
        loss, gradients, updates = mean[0], mean[1:1 + count], mean[1 + count:]
        counted = self.apply_update(loss, gradients, variables, before, num_tasks, zip(non_trainable, updates),
                                    label_failing=failing)
        return self.update_metrics(loss, episodes["query_y"], predictions, counted)

    def call(self, episodes, training=False, inner_steps=None, inference=None):
        """Adapts to each task's support set and predicts its queries.

        Args:
            episodes: a dict with `support_x`, `support_y`, `query_x`, each
                with a leading task axis.
            training: passed to the backbone's layers. With `training=True`,
                random layers (Dropout) draw fresh randomness in every inner
                step and every task, and their seed states advance.
            inner_steps: inner steps; default `eval_inner_steps`.
            inference: `"per-query"` or `"transductive"`; default the
                model's `inference`.

        Returns:
            Query predictions `[tasks, queries, outputs]` (logits for
            classifiers).
        """
        if inner_steps is None:
            inner_steps = self.eval_inner_steps
        _check_steps("inner_steps", inner_steps)
        if inference is not None:
            _check_inference(inference)
        episodes = self.checked_episodes(episodes)
        random_variables = self._random_variables()

        def task_fn(task, random_state):
            predictions, updates = self._adapt_and_predict(task, inner_steps, training, random_state,
                                                           inference=inference)
            return predictions, [u for u, v in zip(updates, self.backbone.non_trainable_variables)
                                 if _is_random_state(v)]

        keep_last = [lambda _, value: value] * len(random_variables)
        predictions, random_state = self._over_tasks(episodes, task_fn, [v.value for v in random_variables],
                                                     keep_last)
        if training is True:
            for variable, value in zip(random_variables, random_state):
                variable.assign(value)
        return predictions

    def get_config(self):
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "inner_lr": self.inner_lr,
            "inner_steps": self.inner_steps,
            "eval_inner_steps": self.eval_inner_steps,
            "first_order": self.first_order,
            "learn_inner_lr": self.learn_inner_lr,
            "loss": keras.losses.serialize(self.task_loss),
            "classifier": self.is_classifier,
            "allow_mixed_precision": self.allow_mixed_precision,
            "learn_per_step_inner_lr": self.learn_per_step_inner_lr,
            "multi_step_loss_iterations": self.multi_step_loss_iterations,
            "first_order_iterations": self.first_order_iterations,
            "inference": self.inference,
            "adapt_normalization": self.adapt_normalization,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # Models saved before the option existed adapted their normalization weights, and were trained so.
        config.setdefault("adapt_normalization", True)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        config["loss"] = keras.losses.deserialize(config["loss"])
        return cls(**config)
