"""Where tfmeta finds the official Omniglot release when no directory is given.

Search order, the first match wins (a directory matches when it holds
`images_background.zip` or an extracted `images_background/` folder):

1. the directory given (`data_dir=` in Python, `--data-dir` on the command line);
2. the environment variable `TFMETA_OMNIGLOT_DIR`;
3. `data/omniglot` under the current directory: a clone of the tfmeta
   repository, which ships the release there, run from its root;
4. `data/omniglot` of the source tree tfmeta was imported from (a clone
   installed with `pip install -e`, run from anywhere);
5. otherwise tensorflow-datasets, which downloads Omniglot once (network
   needed) into its data directory. Lake's 20 runs (`all_runs.zip`) are not
   in tensorflow-datasets, so for them the search ends at step 4.
"""

import os
import pathlib
import socket

from tfmeta.omniglot_names import DATA_DIR_HELP, ENVIRONMENT_VARIABLE  # noqa: F401  (DATA_DIR_HELP: re-exported)

REPOSITORY_DATA = pathlib.Path("data", "omniglot")
OFFICIAL_RELEASE = "https://github.com/brendenlake/omniglot (folder python/)"
_SOURCE_TREE = pathlib.Path(__file__).resolve().parents[2]
# tensorflow-datasets downloads Omniglot from GitHub; without a connection it
# retries for minutes before failing deep inside `requests`.
_DOWNLOAD_HOST = ("github.com", 443)


class OmniglotNotFoundError(FileNotFoundError):
    """Raised when no copy of Omniglot is found and none can be downloaded."""


def _holds_release(directory, member="images_background"):
    return (directory / f"{member}.zip").is_file() or (directory / member).is_dir()


def candidate_dirs():
    """The directories searched after an explicit one, in order: `[(description, path or None)]`."""
    from_environment = os.environ.get(ENVIRONMENT_VARIABLE)
    return [
        (f"${ENVIRONMENT_VARIABLE}", pathlib.Path(from_environment) if from_environment else None),
        ("the current directory's data/omniglot", pathlib.Path.cwd() / REPOSITORY_DATA),
        ("the tfmeta source tree's data/omniglot", _SOURCE_TREE / REPOSITORY_DATA),
    ]


def find_omniglot_dir(data_dir=None, member="images_background"):
    """The directory to read the official release from, or `None` for tensorflow-datasets.

    Args:
        data_dir: an explicit directory; returned as it is when given (the
            loaders check it).
        member: the release file that must be there (`"images_background"`,
            or `"all_runs"` for Lake's runs).
    """
    if data_dir is not None:
        return os.fspath(data_dir)
    for description, directory in candidate_dirs():
        if directory is None:
            continue
        if description.startswith("$") and not directory.is_dir():
            raise OmniglotNotFoundError(
                f"{ENVIRONMENT_VARIABLE}={os.fspath(directory)!r} is not a directory; point it at the official "
                "Omniglot release or unset it.")
        if _holds_release(directory, member):
            return os.fspath(directory)
    return None


def not_found_message(looked_for, cause):
    """One paragraph: what was searched, why it failed, and the two ways to fix it."""
    searched = "; ".join(f"{description} ({os.fspath(path) if path else 'unset'})"
                         for description, path in candidate_dirs())
    return (f"Omniglot not found: no {looked_for} in {searched}, and {cause}. Either point --data-dir "
            f"(data_dir= in Python, or ${ENVIRONMENT_VARIABLE}) at a folder with the official release's "
            f"images_background.zip, images_evaluation.zip and all_runs.zip ({OFFICIAL_RELEASE}; a clone of "
            "the tfmeta repository ships them in data/omniglot), or allow tensorflow-datasets to download "
            "Omniglot once (network access to github.com).")


def check_download_possible():
    """Fails fast, with `not_found_message`, where tensorflow-datasets could not download."""
    try:
        socket.create_connection(_DOWNLOAD_HOST, timeout=5).close()
    except OSError as error:
        raise OmniglotNotFoundError(not_found_message(
            "official release", f"tensorflow-datasets cannot download it ({_DOWNLOAD_HOST[0]} is unreachable: "
                                f"{error})")) from None
