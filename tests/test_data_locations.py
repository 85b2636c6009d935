"""Where Omniglot is found without a flag, what happens where it is not, and what the records say."""

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO
from tfmeta.data import load_lake_runs, load_omniglot, locations, omniglot
from tfmeta.experiments import reporting


def test_shipped_release_matches_its_checksums(omniglot_dir):
    for line in (omniglot_dir / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((omniglot_dir / name).read_bytes()).hexdigest() == digest, name
    assert "MIT" in (omniglot_dir / "LICENSE").read_text()


def test_search_order_environment_then_current_directory_then_source_tree(no_local_omniglot, monkeypatch,
                                                                         omniglot_dir):
    here = no_local_omniglot
    assert locations.find_omniglot_dir() is None
    monkeypatch.setattr(locations, "_SOURCE_TREE", REPO)
    assert locations.find_omniglot_dir() == os.fspath(omniglot_dir)
    (here / "data" / "omniglot" / "all_runs").mkdir(parents=True)
    assert locations.find_omniglot_dir() == os.fspath(omniglot_dir)  # no images_background here
    assert locations.find_omniglot_dir(member="all_runs") == os.fspath(here / "data" / "omniglot")
    (here / "data" / "omniglot" / "images_background").mkdir()
    assert locations.find_omniglot_dir() == os.fspath(here / "data" / "omniglot")
    monkeypatch.setenv(locations.ENVIRONMENT_VARIABLE, os.fspath(omniglot_dir))
    assert locations.find_omniglot_dir() == os.fspath(omniglot_dir)
    assert locations.find_omniglot_dir("somewhere/else") == "somewhere/else"  # an explicit directory wins
    monkeypatch.setenv(locations.ENVIRONMENT_VARIABLE, os.fspath(here / "missing"))
    with pytest.raises(locations.OmniglotNotFoundError, match="TFMETA_OMNIGLOT_DIR=.*missing.*not a directory"):
        locations.find_omniglot_dir()


def test_without_data_or_network_the_error_names_the_search_and_both_fixes(no_local_omniglot, monkeypatch):
    def unreachable(address, timeout=None):
        raise OSError(f"no route to {address[0]}")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(omniglot, "_read_tfds", omniglot._read_tfds.__wrapped__)  # no cached result
    start = time.time()
    with pytest.raises(locations.OmniglotNotFoundError) as raised:
        load_omniglot("background", tfds_data_dir=os.fspath(no_local_omniglot / "tfds"))
    assert time.time() - start < 30  # fails fast instead of retrying the download for minutes
    message = str(raised.value)
    assert "\n" not in message and "TFMETA_OMNIGLOT_DIR" in message and "data/omniglot" in message
    assert "--data-dir" in message and "allow tensorflow-datasets to download" in message
    assert "no route to github.com" in message
    with pytest.raises(locations.OmniglotNotFoundError, match="no all_runs.zip in .*not have Lake's runs"):
        load_lake_runs()


def test_command_line_reports_no_data_as_one_clear_message(tmp_path):
    """`tfmeta evaluate` in a directory without data, the source tree's copy hidden, and no network."""
    script = (
        "import socket, sys\n"
        "from tfmeta.data import locations\n"
        f"locations._SOURCE_TREE = locations.pathlib.Path({os.fspath(tmp_path)!r})\n"
        "def unreachable(*args, **kwargs): raise OSError('network is unreachable')\n"
        "socket.create_connection = unreachable\n"
        "from tfmeta import cli\n"
        f"cli.main(['evaluate', {os.fspath(REPO / 'savedmodels' / 'protonet-omniglot-5w1s')!r}, '--episodes', '2'])\n"
    )
    env = {**os.environ, "TFDS_DATA_DIR": os.fspath(tmp_path / "tfds")}
    env.pop(locations.ENVIRONMENT_VARIABLE, None)
    completed = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=300)
    assert completed.returncode == 1
    last = completed.stderr.strip().splitlines()[-1]
    assert last.startswith("tfmeta evaluate: Omniglot not found:") and "Traceback" not in completed.stderr


def test_recorded_commands_are_repository_relative(monkeypatch, omniglot_dir):
    monkeypatch.chdir(REPO)
    argv = [os.fspath(REPO / "examples" / "maml_omniglot.py"), "--data-dir", os.fspath(omniglot_dir),
            "--output-dir", os.fspath(REPO / "runs" / "maml"), "--shots", "5"]
    assert reporting.command_line(argv) == "python examples/maml_omniglot.py --output-dir runs/maml --shots 5"
    assert reporting.command_line(["tfmeta", f"--data-dir={omniglot_dir}", "--output=/elsewhere/x.json"]) == \
        "tfmeta --output=/elsewhere/x.json"  # a path outside the repository stays as given
    other = REPO / "tests"  # not the default location: kept, made relative
    assert reporting.command_line(["__main__.py", "evaluate", "--data-dir", os.fspath(other)]) == \
        "python -m tfmeta evaluate --data-dir tests"


def _strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?!/)[\w.-]+/")  # a path from the root, not a URL


def test_records_hold_only_repository_relative_paths():
    records = [*(REPO / "results").rglob("*.json"), *(REPO / "savedmodels").glob("*/model.json")]
    assert len(records) > 10
    for path in records:
        for text in _strings(json.loads(path.read_text())):
            assert not ABSOLUTE_PATH.search(text), f"{path.relative_to(REPO)}: {text!r}"
            assert "../" not in text, f"{path.relative_to(REPO)} names a path outside the repository: {text!r}"
    for path in [REPO / "README.md", REPO / "savedmodels" / "README.md", *(REPO / "docs").rglob("*.md")]:
        for line in path.read_text().splitlines():
            assert not re.search(r"(?<![\w.:/~-])/(work|home|root|tmp|Users)/", line), \
                f"{path.relative_to(REPO)}: {line!r}"
            assert "../shared" not in line, f"{path.relative_to(REPO)}: {line!r}"
