"""ANIL: Almost No Inner Loop (Raghu, Raghu, Bengio, Vinyals 2020): MAML whose inner loop adapts the head only."""

import keras

from tfmeta.algorithms import keras_internals
from tfmeta.algorithms.maml import MAML


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

    def _inner_loop_mask(self, backbone):
        head = [w for layer in self._head for w in layer.trainable_weights]
        return [adapts and any(v is w for w in head)
                for v, adapts in zip(backbone.trainable_variables, super()._inner_loop_mask(backbone))]

    def get_config(self):
        return {**super().get_config(), "head": list(self.head)}
