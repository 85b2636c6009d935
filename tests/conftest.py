import pathlib

import pytest

from tfmeta.data import locations

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def omniglot_dir():
    """The official Omniglot release, as the repository ships it in data/omniglot."""
    path = REPO / locations.REPOSITORY_DATA
    if not (path / "images_background.zip").is_file():
        pytest.fail(f"the repository's Omniglot release is missing: no {path / 'images_background.zip'}")
    return path


@pytest.fixture
def no_local_omniglot(monkeypatch, tmp_path):
    """A process in which the search for a local Omniglot release finds nothing (tensorflow-datasets is next)."""
    monkeypatch.delenv(locations.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(locations, "_SOURCE_TREE", tmp_path)
    return tmp_path


@pytest.fixture
def mocked_tfds_omniglot(no_local_omniglot, monkeypatch):
    """As `no_local_omniglot`, for tests under `tfds.testing.mock_data`, which needs no network."""
    monkeypatch.setattr(locations, "check_download_possible", lambda: None)
