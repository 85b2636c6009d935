"""Multi-host meta-training: two worker processes on this machine, as two hosts would run it."""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np

from conftest import finished
from tfmeta import cli


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_workers_train_to_identical_weights_equal_to_one_device(tmp_path):
    # Sinusoid MAML: the strategy path of every dataset, without reading Omniglot in each process.
    arguments = ["train", "--algorithm", "maml", "--dataset", "sinusoid", "--shots", "5", "--queries", "5",
                 "--meta-batch", "4", "--iterations", "3", "--iterations-per-epoch", "3", "--val-episodes", "2",
                 "--test-episodes", "4", "--seed", "2"]
    command = [sys.executable, "-m", "tfmeta", *arguments]
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(2)]}
    workers = []
    try:
        for index in range(2):
            env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
            workers.append(subprocess.Popen([*command, "--distribute", "multiworker", "--output-dir",
                                             str(tmp_path / "cluster")], env=env, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True))
        single = tmp_path / "single"  # one device, in this process while the workers run
        assert cli.main([*arguments, "--output-dir", str(single)]) == 0
        outputs = [finished(worker) for worker in workers]
    finally:
        for worker in workers:  # never leave a worker behind, whatever failed
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert "data-parallel over 2 replica(s)" in outputs[0]  # one per worker

    chief = keras.models.load_model(tmp_path / "cluster" / "model.keras").get_weights()
    other = keras.models.load_model(tmp_path / "cluster" / "worker-1" / "model.keras").get_weights()
    alone = keras.models.load_model(single / "model.keras").get_weights()
    for a, b, c in zip(chief, other, alone):
        np.testing.assert_array_equal(a, b)  # the workers agree exactly
        np.testing.assert_allclose(a, c, atol=1e-5)  # and update as one device does
