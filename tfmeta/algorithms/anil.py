"""ANIL: Almost No Inner Loop (Raghu, Raghu, Bengio, Vinyals 2020): MAML whose inner loop adapts the head only."""

import keras

from tfmeta.algorithms import keras_internals
from tfmeta.algorithms.maml import (
    MAML,
    _is_random_state,
    adapt_and_predict,
    adapt_and_predict_each_step,
    predict_queries,
)
from tfmeta.layers.batch_normalization import MetaBatchNormalization


def head_layers(backbone, names=None):
    """The layers of `backbone` that ANIL's inner loop adapts.

    Args:
        backbone: a built Keras model.
        names: layer names (nested layers too), or None for the last layer
            of `backbone.layers` that has trainable weights (a classifier's
            output layer).

    Returns:
        A list of layers.
    """
    layers = keras_internals.flatten_layers(backbone)
    if names is None:
        with_weights = [layer for layer in backbone.layers if layer.trainable_weights]
        if not with_weights:
            raise ValueError(f"`backbone` {backbone.name!r} has no layer with trainable weights to adapt.")
        return with_weights[-1:]
    if isinstance(names, str) or not names:
        raise ValueError(f"`head` must be None or a non-empty list of layer names; received head={names!r}.")
    by_name = {layer.name: layer for layer in layers}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        weighted = [layer.name for layer in layers if layer.trainable_weights]
        raise ValueError(f"`head` names layers {unknown} that backbone {backbone.name!r} does not have; its "
                         f"layers with trainable weights: {weighted}.")
    without_weights = [name for name in names if not by_name[name].trainable_weights]
    if without_weights:
        raise ValueError(f"`head` layers {without_weights} have no trainable weights to adapt; received "
                         f"head={names!r}.")
    return [by_name[name] for name in names]


def _positions(variables, of):
    """Where each of `variables` is in the list `of`."""
    return [next(i for i, w in enumerate(of) if w is v) for v in variables]


def split_at_head(backbone, head):
    """`(body, top)`: two Keras models with `top(body(x)) == backbone(x)`, cut at the input of the first head layer.

    They share the backbone's layers (and variables); every weight of the
    backbone is in exactly one of them, the head's in `top`. None when the
    backbone does not split so: a subclassed model, a head layer nested in
    another layer or called more than once, or a graph in which layers
    above the cut read tensors from below it other than the cut.
    """
    if not all(any(layer is top_level for top_level in backbone.layers) for layer in head):
        return None
    first = min(next(i for i, top_level in enumerate(backbone.layers) if top_level is layer) for layer in head)
    try:
        cut = backbone.layers[first].input
        body, top = keras.Model(backbone.inputs, cut), keras.Model(cut, backbone.outputs)
    except (AttributeError, TypeError, ValueError):
        return None
    if sorted(map(id, body.weights + top.weights)) != sorted(map(id, backbone.weights)):
        return None
    return body, top


@keras.saving.register_keras_serializable(package="tfmeta")
class ANIL(MAML):
    """ANIL as a Keras model that trains with `fit`: MAML with an inner loop on the head alone.

    The inner loop adapts only the head (by default the backbone's last
    layer with weights, its output layer); the body (every other layer) is
    learned by the outer loop alone and stays as it is inside each task.
    Raghu et al. found that MAML's inner loop barely changes the body
    (feature reuse), and that adapting the head alone keeps MAML's accuracy.
    Everything else is `MAML`'s: the outer meta-gradient (second order
    through the head's inner steps, or `first_order=True`), evaluation and
    serving (the exported graph adapts the head on the support set).

    The body's features are computed once per task, and only the head runs
    in the inner loop, whenever that gives what running the whole network
    at every step gives (`reuses_features`): the backbone splits below the
    head into a body and a top (`split_at_head`) and the body has no
    per-step layers (`MetaBatchNormalization(steps=...)`, whose weights
    change from step to step). In training, a body with random layers
    (Dropout) also runs whole at every step, so that each pass draws fresh
    randomness. The body is run on the support set, and on the queries as
    `predict_queries` runs them (with the support set's statistics for
    per-query inference); its outputs then depend on its weights alone,
    which the inner loop does not change. The meta-gradient reaches the
    body's weights through the features, in second order through the
    head's inner steps too.

    Args:
        backbone: a built Keras model mapping inputs to logits (or
            regression outputs).
        head: names of the layers the inner loop adapts; default: the last
            layer of `backbone.layers` with trainable weights.
        **kwargs: `MAML`'s arguments (`inner_lr`, `inner_steps`,
            `eval_inner_steps`, `first_order`, `learn_inner_lr`, `loss`, ...).

    Reference:
        Raghu, Raghu, Bengio, Vinyals. Rapid Learning or Feature Reuse?
        Towards Understanding the Effectiveness of MAML. ICLR 2020.

    Example:
        >>> anil = ANIL(tfmeta.models.omniglot_cnn(ways=5), inner_lr=0.4, inner_steps=1)
        >>> anil.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> anil.fit(train_episodes, steps_per_epoch=100, epochs=10)
    """

    def __init__(self, backbone, head=None, **kwargs):
        if isinstance(backbone, keras.Model) and backbone.built:
            # Read by _inner_loop_mask during MAML's constructor (hence set past Keras's attribute tracking).
            object.__setattr__(self, "_head", head_layers(backbone, head))
        super().__init__(backbone, **kwargs)
        self.head = [layer.name for layer in self._head]
        # Set past Keras's tracking: the parts' layers are the backbone's, saved with it.
        parts = split_at_head(backbone, self._head)
        object.__setattr__(self, "_parts", parts)
        # Where each part's variables are in the backbone's lists, to hand each part its share of the values.
        object.__setattr__(self, "_part_positions", parts and [
            (_positions(part.trainable_variables, backbone.trainable_variables),
             _positions(part.non_trainable_variables, backbone.non_trainable_variables)) for part in parts])

    @property
    def reuses_features(self):
        """Whether the body's features are computed once per task (in training: unless it has random layers)."""
        return self._parts is not None and not any(
            isinstance(layer, MetaBatchNormalization) and layer.steps is not None
            for layer in keras_internals.flatten_layers(self._parts[0]))

    def _adapt_and_predict(self, task, steps, training, random_state, first_order=None, each_step=False,
                           inference=None):
        body, top = self._parts or (None, None)
        if not self.reuses_features or training and any(map(_is_random_state, body.non_trainable_variables)):
            return super()._adapt_and_predict(task, steps, training, random_state, first_order, each_step, inference)
        inference = self.inference if inference is None else inference
        params, non_trainable = self._backbone_values(random_state)

        parts = self._part_positions
        (body_params, body_state), (top_params, top_state) = [
            ([params[i] for i in p], [non_trainable[i] for i in n]) for p, n in parts]
        support_features, _ = body.stateless_call(body_params, body_state, task["support_x"], training=training)
        query_features, body_updates = predict_queries(body, body_params, body_state, task["support_x"],
                                                       task["query_x"], inference, training)
        rates = self._learning_rates()
        top_rates = (lambda step: [rates(step)[i] for i in parts[1][0]]) if callable(rates) else \
            [rates[i] for i in parts[1][0]]
        predict = adapt_and_predict_each_step if each_step else adapt_and_predict
        predictions, top_updates = predict(
            top, top_params, top_state,
            {"support_x": support_features, "support_y": task["support_y"], "query_x": query_features},
            self.mean_loss, top_rates, steps, self.first_order if first_order is None else first_order, training,
            inference)
        updates = list(non_trainable)
        for (_, state_positions), part_updates in zip(parts, (body_updates, top_updates)):
            for i, update in zip(state_positions, part_updates):
                updates[i] = update
        return predictions, updates

    def _inner_loop_mask(self, backbone):
        head = [w for layer in self._head for w in layer.trainable_weights]
        return [adapts and any(v is w for w in head)
                for v, adapts in zip(backbone.trainable_variables, super()._inner_loop_mask(backbone))]

    def get_config(self):
        return {**super().get_config(), "head": list(self.head)}
