"""tfmeta train tests the model of the epoch with the best validation score, may stop early, and may anneal
its outer learning rate."""

import json

import keras
import numpy as np
import pytest

import tfmeta
from tfmeta.data import sinusoid_tasks
from tfmeta.experiments import parse_train_config, reporting, sinusoid, train
from tfmeta.experiments.config import compile_for_training


def test_best_epoch_and_early_stopping_read_the_validation_curve():
    history = {"loss": [3, 2, 1, 1, 1], "val_accuracy": [0.5, 0.7, 0.6, 0.7, 0.65]}
    assert reporting.best_epoch(history) == (2, "val_accuracy")  # the first of ties
    assert reporting.best_epoch({"loss": [1, 2], "val_loss": [0.4, 0.3]}) == (2, "val_loss")
    assert reporting.best_epoch({"loss": [1.0]}) == (None, None)
    assert reporting.stops_early(history, 3) and not reporting.stops_early(history, 4)
    assert not reporting.stops_early(history, None)


def sinusoid_run(tmp_path, *flags):
    config = parse_train_config([
        "--algorithm", "maml", "--dataset", "sinusoid", "--meta-batch", "2", "--iterations", "8",
        "--iterations-per-epoch", "1", "--meta-lr", "0.05", "--val-episodes", "4", "--test-episodes", "20",
        "--output-dir", str(tmp_path), *flags])
    return train(config), config


def test_the_tested_model_is_the_best_validation_epochs(tmp_path):
    results, config = sinusoid_run(tmp_path)
    val_loss = results["curve"]["val_loss"]
    best = int(np.argmin(val_loss)) + 1
    assert best < 8, "this seeded run's validation loss should rise again, so that selection matters"
    assert results["iterations"] == 8 and results["selected_iteration"] == best
    assert results["selected_by"] == "best val_loss"
    # The recorded test error is the best checkpoint's, after one inner step, on the run's test tasks.
    maml = keras.models.load_model(tmp_path / "checkpoints" / reporting.BEST)
    maml.eval_inner_steps = 1
    tasks = sinusoid_tasks(config.shots, config.queries, seed=sinusoid.TEST_SEED + config.seed, num_tasks=20,
                           meta_batch_size=20)
    assert results["mse_1_steps"] == pytest.approx(np.mean(sinusoid.query_errors(maml, tasks)), rel=1e-5)
    assert json.loads((tmp_path / "results.json").read_text())["selected_iteration"] == best


def test_test_last_and_early_stopping(tmp_path):
    last, _ = sinusoid_run(tmp_path / "last", "--test-last")
    assert last["selected_iteration"] == 8 and last["selected_by"] == "last epoch"
    stopped, _ = sinusoid_run(tmp_path / "stopped", "--early-stopping", "1")
    val_loss = stopped["curve"]["val_loss"]
    # Stopped one epoch after the best, at the first epoch that did not improve on it.
    assert len(val_loss) == int(np.argmin(val_loss)) + 2 < 8 and stopped["iterations"] == len(val_loss)
    with pytest.raises(SystemExit, match="--early-stopping must be a positive number of epochs; received 0"):
        parse_train_config(["--algorithm", "maml", "--early-stopping", "0"])


def test_cosine_annealing_of_the_outer_learning_rate_follows_the_closed_form():
    config = parse_train_config(["--algorithm", "protonet", "--meta-lr", "1e-3", "--cosine-lr-to", "1e-5",
                                 "--iterations", "1000", "--iterations-per-epoch", "100"])
    model = tfmeta.PrototypicalNetwork(tfmeta.models.dense_embedding(4))
    compile_for_training(model, config)
    model.optimizer.build(model.trainable_variables)
    for step in (0, 250, 500, 1000, 1500):
        model.optimizer.iterations.assign(step)
        expected = 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + np.cos(np.pi * min(step, 1000) / 1000))
        assert float(model.optimizer.learning_rate) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(SystemExit, match="choose one learning-rate schedule"):
        parse_train_config(["--algorithm", "protonet", "--cosine-lr-to", "1e-5", "--lr-decay-every", "100"])
