"""Numerical faults in training: a non-finite step never changes the model."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from conftest import finished


def episodes(nan=False, tasks=2, ways=3, seed=0):
    rng = np.random.default_rng(seed)
    batch = {
        "support_x": rng.uniform(size=[tasks, ways, 28, 28, 1]).astype(np.float32),
        "support_y": np.tile(np.arange(ways), [tasks, 1]).astype(np.int32),
        "query_x": rng.uniform(size=[tasks, 2 * ways, 28, 28, 1]).astype(np.float32),
        "query_y": np.tile(np.repeat(np.arange(ways), 2), [tasks, 1]).astype(np.int32),
    }
    if nan:
        batch["query_x"][0, 0, 0, 0, 0] = np.nan
    return tf.data.Dataset.from_tensors(batch)


MODELS = {
    "maml": lambda: tfmeta.MAML(tfmeta.models.omniglot_cnn(3, filters=8)),
    # conv4_embedding has stock BatchNormalization, whose moving statistics the forward pass updates.
    "protonet": lambda: tfmeta.PrototypicalNetwork(tfmeta.models.conv4_embedding(filters=8)),
}


def state(model):
    return [v.numpy().copy() for v in [*model.variables, *model.optimizer.variables]]


@pytest.mark.parametrize("name", MODELS)
def test_a_non_finite_step_stops_training_naming_it_and_leaves_the_model_as_it_was(name):
    keras.utils.set_random_seed(0)
    model = MODELS[name]()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(episodes().repeat(2), verbose=0)
    before = state(model)
    with pytest.raises(FloatingPointError, match=r"Non-finite meta-loss or gradient at training step 3 \(loss nan\)"):
        model.fit(episodes(nan=True), verbose=0)
    for old, new in zip(before, state(model)):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("name", MODELS)
def test_skip_mode_skips_non_finite_steps_and_trains_on_the_others(name):
    keras.utils.set_random_seed(0)
    model = MODELS[name]()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), non_finite="skip")
    before = state(model)
    history = model.fit(episodes(nan=True), verbose=0)
    assert history.history["skipped_steps"] == [1.0]
    for old, new in zip(before, state(model)):
        np.testing.assert_array_equal(old, new)
    history = model.fit(episodes(nan=True).concatenate(episodes(seed=1)), verbose=0)
    assert history.history["skipped_steps"] == [1.0] and np.isfinite(history.history["loss"][0])
    assert model.optimizer.iterations.numpy() == 1
    assert all(np.isfinite(v).all() for v in state(model))


def test_non_finite_mode_is_validated_and_saved(tmp_path):
    model = MODELS["protonet"]()
    model.save(tmp_path / "uncompiled.keras")  # nothing to record before compile
    assert not keras.models.load_model(tmp_path / "uncompiled.keras").compiled
    with pytest.raises(ValueError, match="non_finite.*received non_finite='ignore'"):
        model.compile(non_finite="ignore")
    model.compile(optimizer="adam", non_finite="skip")
    model.fit(episodes(), verbose=0)
    model.save(tmp_path / "model.keras")
    assert keras.models.load_model(tmp_path / "model.keras").non_finite == "skip"


def test_clip_norm_flag_clips_the_outer_update():
    """--clip-norm C bounds the gradient that the first (Adam) update applies, read from the update itself.

    Keras's Adam adds ε to sqrt(v), so its first update is, per entry, Δ_i = lr·s·ĝ_i / (s·|ĝ_i| + ε) with
    s = sqrt(1 − β2), for the gradient ĝ it applies. When every |ĝ_i| ≤ ‖ĝ‖ = C, the update's norm is
    lr·s·C/ε within a factor 1/(1 + s·C/ε); unclipped, it would be about lr·sqrt(number of weights).
    """
    from tfmeta.experiments.config import compile_for_training, resolve, train_parser

    clip = 1e-7
    config = resolve(train_parser().parse_args(
        ["--algorithm", "protonet", "--clip-norm", str(clip), "--meta-lr", "1.0"]))
    keras.utils.set_random_seed(0)
    model = MODELS["protonet"]()
    compile_for_training(model, config)
    model.run_eagerly = True  # the same step, without tracing
    before = [v.numpy().copy() for v in model.trainable_variables]
    model.fit(episodes(), verbose=0)
    update = np.sqrt(sum(np.sum((b - v.numpy()) ** 2) for b, v in zip(before, model.trainable_variables)))
    s, epsilon = np.sqrt(1 - model.optimizer.beta_2), model.optimizer.epsilon
    bound = 1.0 * s * clip / epsilon
    assert bound / (1 + s * clip / epsilon) * (1 - 1e-4) <= update <= bound * (1 + 1e-4), (update, bound)


def test_lr_decay_flags_step_the_outer_learning_rate():
    from tfmeta.experiments.config import compile_for_training, resolve, train_parser

    config = resolve(train_parser().parse_args(["--algorithm", "protonet", "--lr-decay-every", "2000"]))
    model = MODELS["protonet"]()
    compile_for_training(model, config)
    model.optimizer.build(model.trainable_variables)
    rates = []
    for step in (0, 1999, 2000, 4000):
        model.optimizer.iterations.assign(step)
        rates.append(float(model.optimizer.learning_rate))  # the rate of the next update
    np.testing.assert_allclose(rates, [1e-3, 1e-3, 5e-4, 2.5e-4], rtol=1e-6)
    for flags, message in ((["--lr-decay-every", "0"], "positive number of meta-iterations; received 0"),
                           (["--lr-decay-factor", "1.5"], r"must be in \(0, 1\]; received 1.5")):
        with pytest.raises(SystemExit, match=message):
            resolve(train_parser().parse_args(["--algorithm", "protonet", *flags]))


def test_deterministic_runs_give_identical_weights(tmp_path):
    """Two fresh processes, running at once, the same seed and settings: the same weights, bit for bit."""
    runs = {run: subprocess.Popen(
        [sys.executable, "-m", "tfmeta", "train", "--algorithm", "maml", "--dataset", "sinusoid", "--deterministic",
         "--seed", "3", "--meta-batch", "4", "--iterations", "3", "--iterations-per-epoch", "3", "--val-episodes", "4",
         "--test-episodes", "4", "--output-dir", str(tmp_path / run)], stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True) for run in ("a", "b")}
    weights = []
    for run, process in runs.items():
        finished(process)
        weights.append(keras.models.load_model(tmp_path / run / "model.keras").get_weights())
        results = json.loads((tmp_path / run / "results.json").read_text())
        assert results["config"]["deterministic"] is True and results["iterations"] == 3
    for first, second in zip(*weights):
        np.testing.assert_array_equal(first, second)
