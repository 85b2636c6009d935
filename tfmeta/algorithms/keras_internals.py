"""The private Keras API that tfmeta relies on, all of it, in one place.

Checked against Keras 3.15.1 with TensorFlow 2.21 (`KERAS_VERSIONS_CHECKED`).
tests/test_keras_private_api.py fails, naming what changed, if a Keras
version changes any of it; re-read the Keras source named below then.

What is used, and why public API cannot do it:

- `TensorFlowTrainer._maybe_symbolic_build(iterator=None, data_batch=None)`
  (keras/src/backend/tensorflow/trainer.py), called by `fit` and `evaluate`
  before training. Under a tf.distribute strategy it reads the first batch
  and averages it over replicas with `strategy.reduce("MEAN", ...)`, which
  MultiWorkerMirroredStrategy cannot do for dict batches. There is no public
  hook around it, so `SymbolicBuildForStrategies` overrides it.
- `Trainer._distribute_strategy`: the strategy the model was created under,
  or None. Keras's own `_maybe_symbolic_build` decides on it; the public
  `distribute_strategy` property replaces None with the current default
  strategy, which loses that distinction.
- `Trainer._compile_metrics`: the `CompileMetrics` that `compile(metrics=...)`
  creates, built from symbolic labels and predictions; it is not in a public
  attribute.
- `Layer._flatten_layers(include_self, recursive)`: every layer inside a
  layer, including the sublayers of custom layers and wrappers, which the
  public `Model.layers` (top level only) does not list. MAML uses it to find
  layers whose second-order gradient is wrong.
"""

import keras

KERAS_VERSIONS_CHECKED = ("3.15.1",)


def created_under_strategy(model):
    """Whether `model` was created inside a tf.distribute strategy's scope."""
    return model._distribute_strategy is not None


def flatten_layers(layer):
    """Every layer nested in `layer` (not itself), at any depth."""
    return layer._flatten_layers(include_self=False, recursive=True)


def compile_metrics(model):
    """The `CompileMetrics` of a compiled model, or None."""
    return getattr(model, "_compile_metrics", None)


class SymbolicBuildForStrategies:
    """Mixin for episodic models: builds the optimizer and metrics directly under a strategy.

    Episodic models are built when constructed; what Keras's symbolic build
    would add is the optimizer's variables and the compiled metrics' (labels
    `[tasks, queries]`, scores `[tasks, queries, ways]`).
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if not created_under_strategy(self) or not self.compiled:  # Keras builds when tracing
            return super()._maybe_symbolic_build(iterator, data_batch)
        with self.distribute_strategy.scope():
            if not self.optimizer.built:
                self.optimizer.build(self.trainable_variables)
            metrics = compile_metrics(self)
            if metrics is not None and not metrics.built:
                metrics.build(keras.KerasTensor((None, None), "int32"),
                              keras.KerasTensor((None, None, None), "float32"))
