"""Data-parallel meta-training: two replicas update the weights exactly as one device does."""

import json
import subprocess
import sys

import numpy as np
import pytest

# Both checks run in one process (TensorFlow's start-up and the strategy are shared), which splits the CPU into
# two logical devices before TensorFlow starts.
TWO_REPLICAS = r"""
import json
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, tfmeta
from tfmeta.layers import MetaBatchNormalization

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
reports = {}
"""

CHECK = r"""
rng = np.random.default_rng(0)
tasks, ways = 4, 3
batch = {"support_x": rng.uniform(size=[tasks, ways, 28, 28, 1]).astype("float32"),
         "support_y": np.tile(np.arange(ways), [tasks, 1]).astype("int32"),
         "query_x": rng.uniform(size=[tasks, 2 * ways, 28, 28, 1]).astype("float32"),
         "query_y": np.tile(np.repeat(np.arange(ways), 2), [tasks, 1]).astype("int32")}
builders = {
    "maml": lambda: tfmeta.MAML(tfmeta.models.omniglot_cnn(ways, filters=8), inner_steps=2),
    "protonet-clipped": lambda: tfmeta.PrototypicalNetwork(tfmeta.models.conv4_embedding(filters=8)),
}
CLIP = 0.01  # far below these gradients' norms: every step is clipped
report = {}
for name, build in builders.items():
    def trained(scope):
        with scope:
            keras.utils.set_random_seed(0)
            model = build()
            # Plain SGD: the update is the aggregated gradient itself. (Adam's first steps are about
            # lr * sign(g), which turns float noise in a near-zero gradient into a visible difference.)
            clip = {"global_clipnorm": CLIP} if name.endswith("clipped") else {}
            model.compile(optimizer=keras.optimizers.SGD(0.01, **clip))
        initial = model.get_weights()
        trainable = [v.numpy() for v in model.trainable_variables]
        data = tf.data.Dataset.from_tensor_slices(batch).batch(tasks, drop_remainder=True)
        model.fit(data, verbose=0)
        first_update = float(np.sqrt(sum(np.sum((w - v.numpy()) ** 2) for w, v in
                                          zip(trainable, model.trainable_variables))))
        model.fit(data.repeat(2), verbose=0)
        return model, initial, first_update
    single, initial, single_update = trained(tf.name_scope("single"))
    mirrored, mirrored_initial, mirrored_update = trained(strategy.scope())
    drift = max(float(np.abs(part.numpy() - strategy.experimental_local_results(v.value)[0].numpy()).max())
                for v in mirrored.variables for part in strategy.experimental_local_results(v.value))
    report[name] = {
        "same_start": all(np.array_equal(a, b) for a, b in zip(initial, mirrored_initial)),
        "moved": max(float(np.abs(a - b).max()) for a, b in zip(initial[:1], single.get_weights()[:1])),
        "difference": max(float(np.abs(a.numpy() - b.numpy()).max())
                          for a, b in zip(single.trainable_variables, mirrored.trainable_variables)),
        "relative_difference": max(float((np.abs(a - b) / np.maximum(np.abs(a), 1.0)).max())
                                   for a, b in zip(single.get_weights(), mirrored.get_weights())),
        "replica_drift": drift,
        "first_update_norms": [single_update, mirrored_update],
    }
reports["training"] = report
"""


def test_mirrored_meta_training_equals_one_device_for_maml_and_for_protonet_with_clipping(reports):
    report = reports["training"]
    # Clipped: the first SGD update is learning rate x the clipping norm (so clipping acted), on one device and
    # on two (where each replica's half of the gradient used to be clipped on its own, giving up to twice that).
    np.testing.assert_allclose(report["protonet-clipped"]["first_update_norms"], [0.01 * 0.01] * 2, rtol=1e-4)
    for name, figures in report.items():
        assert figures["same_start"], name
        moved = 1e-6 if name.endswith("clipped") else 1e-4  # clipped steps are short (0.01 * CLIP)
        assert figures["moved"] > moved, f"{name}: three steps should move the weights"
        # Three steps on 2 replicas against one device: float32 reductions in another order
        # (synchronised batch norm computes E[x^2] - E[x]^2 for ProtoNet's embedding).
        assert figures["difference"] <= 1e-5, (name, figures)  # trainable weights, absolute
        assert figures["relative_difference"] <= 1e-5, (name, figures)  # everything, BN statistics included
        assert figures["replica_drift"] == 0.0, (name, figures)  # BN moving statistics included


STATISTICS = r"""
rng = np.random.default_rng(0)
tasks, ways = 3, 3  # 2 tasks on one replica, 1 on the other; each task's inputs of another scale and offset
batch = {"support_x": rng.normal(size=[tasks, 2 * ways, 2]).astype("float32") * np.arange(1, 4)[:, None, None],
         "support_y": np.tile(np.repeat(np.arange(ways), 2), [tasks, 1]).astype("int32"),
         "query_x": rng.normal(size=[tasks, 2 * ways, 2]).astype("float32") + np.arange(3)[:, None, None],
         "query_y": np.tile(np.repeat(np.arange(ways), 2), [tasks, 1]).astype("int32")}

def stock():
    inputs = keras.Input((2,))
    x = keras.layers.BatchNormalization(momentum=0.5, name="norm0")(keras.layers.Dense(4)(inputs))
    return tfmeta.MAML(keras.Model(inputs, keras.layers.Dense(ways)(x)), first_order=True)

def per_step():
    inputs = keras.Input((2,))
    norm = MetaBatchNormalization(steps=2, per_step_statistics=True, momentum=0.5, name="norm0")
    x = norm(keras.layers.Dense(4)(inputs))
    return tfmeta.MAML(keras.Model(inputs, keras.layers.Dense(ways)(x)), inner_steps=2)

report = {}
for name, build in {"stock": stock, "per_step": per_step}.items():
    statistics = {}
    for where, scope in (("single", tf.name_scope("single")), ("mirrored", strategy.scope())):
        with scope:
            keras.utils.set_random_seed(0)
            model = build()
            model.compile(optimizer=keras.optimizers.SGD(0.01))
        model.fit(tf.data.Dataset.from_tensor_slices(batch).batch(tasks, drop_remainder=True), verbose=0)
        moving = [v for v in model.backbone.non_trainable_variables if "moving" in v.path]
        statistics[where] = [[part.numpy().tolist() for part in strategy.experimental_local_results(v.value)]
                             if where == "mirrored" else [v.numpy().tolist()] for v in moving]
    report[name] = statistics
reports["statistics"] = report
print(json.dumps(reports))
"""


@pytest.fixture(scope="module")
def reports():
    completed = subprocess.run([sys.executable, "-c", TWO_REPLICAS + CHECK + STATISTICS], capture_output=True,
                               text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_mirrored_moving_statistics_are_the_task_weighted_mean_over_replicas(reports):
    """Stock BN (first order) and per-step MetaBN statistics: replicas agree with each other and with one device.

    3 tasks on 2 replicas (2 and 1): each replica's statistics must weigh by its tasks. One device's are the task
    mean of the query passes (tests/test_maml.py checks them against NumPy).
    """
    for name, statistics in reports["statistics"].items():
        for single, replicas in zip(statistics["single"], statistics["mirrored"]):
            np.testing.assert_array_equal(replicas[0], replicas[1], err_msg=name)
            np.testing.assert_allclose(replicas[0], single[0], rtol=1e-6, atol=1e-6, err_msg=name)
