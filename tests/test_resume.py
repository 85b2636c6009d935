"""A training process killed mid-run resumes where it stopped (and may be extended) and ends where an
uninterrupted run ends."""

import json
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from conftest import finished
from tfmeta.experiments import config as run_config
from tfmeta.experiments import reporting

EPOCHS = 8
FIRST_EPOCHS = 6  # what the killed run was started for; it is resumed for EPOCHS


def train_command(output, *extra, epochs=EPOCHS):
    """Sinusoid MAML: the whole run path (checkpoints, resume) without reading Omniglot in every process."""
    return [sys.executable, "-m", "tfmeta", "train", "--algorithm", "maml", "--dataset", "sinusoid",
            "--deterministic", "--seed", "5", "--shots", "5", "--queries", "5", "--meta-batch", "2",
            "--iterations", str(10 * epochs), "--iterations-per-epoch", "10", "--val-episodes", "2",
            "--test-episodes", "4", "--output-dir", str(output), *extra]


def test_sigkilled_training_resumes_and_extends_to_the_same_weights_as_an_uninterrupted_run(tmp_path):
    whole = subprocess.Popen(train_command(tmp_path / "whole"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)  # runs beside the killed one

    killed = tmp_path / "killed"
    process = subprocess.Popen(train_command(killed, epochs=FIRST_EPOCHS), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    latest = killed / "checkpoints" / "latest.json"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and process.poll() is None:
            if latest.is_file() and json.loads(latest.read_text())["epoch"] >= 3:
                break
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    state = json.loads(latest.read_text())  # whatever moment the kill came, the checkpoint is whole
    assert 3 <= state["epoch"] < FIRST_EPOCHS, "the run should have been killed mid-way"
    keras.models.load_model(killed / "checkpoints" / state["model"])
    assert not (killed / "results.json").exists()

    resumed = subprocess.run(train_command(killed, "--resume"), capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming after epoch" in resumed.stdout
    finished(whole)
    results = {run: json.loads((tmp_path / run / "results.json").read_text()) for run in ("whole", "killed")}
    assert len(results["killed"]["curve"]["loss"]) == EPOCHS
    np.testing.assert_allclose(results["killed"]["curve"]["loss"], results["whole"]["curve"]["loss"], rtol=1e-6)
    weights = [keras.models.load_model(tmp_path / run / "model.keras").get_weights() for run in ("whole", "killed")]
    for whole, resumed_weights in zip(*weights):
        np.testing.assert_array_equal(whole, resumed_weights)
    assert results["killed"]["mse_1_steps"] == results["whole"]["mse_1_steps"]
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == \
        [reporting.BEST, f"epoch-{EPOCHS:04d}.keras", "latest.json"]


def test_resume_refuses_a_checkpoint_made_with_other_settings(tmp_path):
    parser = run_config.train_parser()
    config = run_config.resolve(parser.parse_args(["--algorithm", "protonet", "--output-dir", str(tmp_path)]))
    files = reporting.RunFiles(tmp_path)
    files.checkpoints.mkdir()
    files.latest.write_text(json.dumps({"epoch": 1, "model": "epoch-0001.keras", "history": {},
                                        "train_seconds": 1.0, "config": {**vars(config), "meta_lr": 0.5}}))
    resumed = run_config.resolve(parser.parse_args(["--algorithm", "protonet", "--output-dir", str(tmp_path),
                                                    "--resume"]))
    with pytest.raises(SystemExit, match=r"other settings: meta_lr=0.5"):
        reporting.fit(None, None, None, resumed, files)


def test_settings_newer_than_a_checkpoint_match_it_while_unset():
    saved = {"algorithm": "maml", "meta_lr": 1e-3, "intra_op_threads": 1}
    current = {**saved, "intra_op_threads": 2, "within_alphabet": False, "lr_decay_every": None}
    assert reporting.changed_settings(saved, current) == []
    assert reporting.changed_settings(saved, {**current, "within_alphabet": True}) == ["within_alphabet"]
    assert reporting.changed_settings(saved, {**current, "meta_lr": 0.5}) == ["meta_lr"]


def resume_after(tmp_path, epoch, started_with, resumed_with):
    """`reporting.fit` resuming a checkpoint at `epoch` of a run started with flags `started_with`."""
    parser = run_config.train_parser()
    flags = ["--algorithm", "protonet", "--output-dir", str(tmp_path), "--iterations-per-epoch", "100"]
    config = run_config.resolve(parser.parse_args([*flags, *started_with]))
    files = reporting.RunFiles(tmp_path)
    files.checkpoints.mkdir()
    files.latest.write_text(json.dumps({"epoch": epoch, "model": f"epoch-{epoch:04d}.keras", "history": {},
                                        "train_seconds": 1.0, "config": vars(config)}))
    reporting.fit(None, None, None, run_config.resolve(parser.parse_args([*flags, *resumed_with, "--resume"])),
                  files)


def test_resume_refuses_a_checkpoint_past_the_requested_iterations(tmp_path):
    with pytest.raises(SystemExit, match="at 500 meta-iterations, past --iterations 300"):
        resume_after(tmp_path, 5, ["--iterations", "500"], ["--iterations", "300"])


def test_a_cosine_schedule_resumes_only_with_its_own_iterations(tmp_path):
    cosine = ["--cosine-lr-to", "1e-5"]
    with pytest.raises(SystemExit, match="resumes with its --iterations 500 only; received --iterations 800"):
        resume_after(tmp_path, 2, [*cosine, "--iterations", "500"], [*cosine, "--iterations", "800"])


def test_iterations_must_be_whole_epochs():
    parser = run_config.train_parser()
    with pytest.raises(SystemExit, match="--iterations 1050 is not a whole number of epochs of "
                                         "--iterations-per-epoch 500; make it a multiple, e.g. 1000"):
        run_config.resolve(parser.parse_args(["--algorithm", "protonet", "--iterations", "1050"]))
    assert run_config.resolve(parser.parse_args(["--algorithm", "maml", "--iterations", "50"])).iterations == 50


def test_maml_on_a_cpu_gets_one_intra_op_thread_unless_told_otherwise():
    parser = run_config.train_parser()

    def threads(*flags):
        return run_config.resolve(parser.parse_args(["--algorithm", *flags]))

    assert threads("maml").intra_op_threads is None  # chosen when the process settings are applied
    assert run_config.default_intra_op_threads("maml") == 1 and run_config.default_intra_op_threads("protonet") == 0
    assert threads("maml", "--intra-op-threads", "0").intra_op_threads == 0
