"""The private Keras API in tfmeta/algorithms/keras_internals.py: fails loudly when Keras changes it.

If a test here fails after a Keras upgrade, re-read the Keras source it
names, adapt keras_internals.py, and update the recorded fingerprints and
`KERAS_VERSIONS_CHECKED`.
"""

import hashlib
import inspect
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.backend.tensorflow.trainer import TensorFlowTrainer
from keras.src.layers.layer import Layer
from keras.src.trainers.trainer import Trainer

import tfmeta
from tfmeta.algorithms import keras_internals

ALGORITHMS = pathlib.Path(tfmeta.algorithms.__file__).parent
PRIVATE_NAMES = ("_maybe_symbolic_build", "_distribute_strategy", "_compile_metrics", "_flatten_layers")

# sha256 (first 16 hex digits) of the Keras source each override or call relies on, Keras 3.15.1.
FINGERPRINTS = {
    "TensorFlowTrainer._maybe_symbolic_build": (TensorFlowTrainer._maybe_symbolic_build, "92a504f5eba9b29f"),
    "Layer._flatten_layers": (Layer._flatten_layers, "662dcf281bc32c53"),
}


def fingerprint(function):
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", FINGERPRINTS)
def test_the_keras_source_tfmeta_relies_on_is_unchanged(name):
    function, recorded = FINGERPRINTS[name]
    assert fingerprint(function) == recorded, (
        f"Keras {keras.__version__} changed {name} (tfmeta checked Keras "
        f"{', '.join(keras_internals.KERAS_VERSIONS_CHECKED)}): re-check tfmeta/algorithms/keras_internals.py")


def test_fit_and_evaluate_call_the_symbolic_build_hook_with_an_iterator():
    assert list(inspect.signature(TensorFlowTrainer._maybe_symbolic_build).parameters) == [
        "self", "iterator", "data_batch"]
    for method in (TensorFlowTrainer.fit, TensorFlowTrainer.evaluate):
        assert "self._maybe_symbolic_build(iterator=epoch_iterator)" in inspect.getsource(method), method


def test_the_creation_strategy_and_compile_metrics_are_where_tfmeta_reads_them():
    assert "self._compile_metrics = CompileMetrics(" in inspect.getsource(Trainer.compile)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        inside = tfmeta.PrototypicalNetwork(tfmeta.models.conv4_embedding((16, 16, 1), filters=2))
        inside.compile(optimizer="sgd")
    outside = tfmeta.PrototypicalNetwork(tfmeta.models.conv4_embedding((16, 16, 1), filters=2))
    assert keras_internals.created_under_strategy(inside) and inside._distribute_strategy is strategy
    assert not keras_internals.created_under_strategy(outside)
    metrics = keras_internals.compile_metrics(inside)
    assert not metrics.built
    metrics.build(keras.KerasTensor((None, None), "int32"), keras.KerasTensor((None, None, None), "float32"))
    assert metrics.built and [m.name for m in metrics.metrics] == ["accuracy"]


def test_flatten_layers_finds_layers_inside_custom_layers_and_wrappers():
    class Block(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = keras.layers.Dense(2, name="inside_block")

        def call(self, x):
            return self.inner(x)

    inputs = keras.Input((3, 4))
    x = keras.layers.TimeDistributed(keras.layers.Dense(4, name="inside_wrapper"))(inputs)
    model = keras.Model(inputs, Block()(x))
    names = {layer.name for layer in keras_internals.flatten_layers(model)}
    assert {"inside_block", "inside_wrapper"} <= names


def test_only_keras_internals_uses_private_keras_api():
    for path in ALGORITHMS.glob("*.py"):
        if path.name == "keras_internals.py":
            continue
        text = path.read_text()
        used = [name for name in PRIVATE_NAMES if name in text]
        assert not used, f"{path.name} uses {used}: move it into keras_internals.py"


def test_training_under_a_strategy_builds_through_the_override():
    """The override's job, end to end: fit under a strategy with a dict dataset (Keras would reduce it)."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = tfmeta.PrototypicalNetwork(tfmeta.models.conv4_embedding((16, 16, 1), filters=2))
        model.compile(optimizer="sgd")
    rng = np.random.default_rng(0)
    batch = {"support_x": rng.uniform(size=[2, 3, 16, 16, 1]).astype("float32"),
             "support_y": np.tile(np.arange(3), [2, 1]).astype("int32"),
             "query_x": rng.uniform(size=[2, 3, 16, 16, 1]).astype("float32"),
             "query_y": np.tile(np.arange(3), [2, 1]).astype("int32")}
    history = model.fit(tf.data.Dataset.from_tensors(batch), verbose=0)
    assert model.optimizer.built and np.isfinite(history.history["loss"][0])
