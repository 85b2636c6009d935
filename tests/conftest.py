import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def omniglot_dir():
    """The official Omniglot release: $TFMETA_OMNIGLOT_DIR or ../shared/omniglot.

    Skipped where it is absent, except under CI, where its absence is a failure.
    """
    path = pathlib.Path(os.environ.get("TFMETA_OMNIGLOT_DIR", REPO.parent / "shared" / "omniglot"))
    if not (path / "images_background.zip").is_file():
        message = f"Omniglot release not found at {path} (set TFMETA_OMNIGLOT_DIR)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
