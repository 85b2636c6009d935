"""A cache on disk of decoded datasets, shared by every process of a user.

Decoding Omniglot's 32,460 PNGs and downsampling them takes 10-15 s on two
CPU cores, every time a process starts (`tfmeta train`, `tfmeta evaluate`,
an example); reading the decoded arrays back takes a fraction of a second.

Where: `$TFMETA_CACHE_DIR`, else `$XDG_CACHE_HOME/tfmeta`, else
`~/.cache/tfmeta`. `TFMETA_CACHE_DIR=""` turns the cache off. An entry is
named by a hash of everything its arrays depend on (the source file's
content, the decoding settings, the TensorFlow version that resized them),
so a changed source is decoded anew; entries that cannot be read are decoded
anew too, and a cache that cannot be written is skipped.
"""

import hashlib
import os
import pathlib
import tempfile
import zipfile

import numpy as np

ENVIRONMENT_VARIABLE = "TFMETA_CACHE_DIR"
# Bumped whenever what an entry holds changes meaning.
FORMAT = 1


def cache_dir():
    """The cache's directory, or `None` when `TFMETA_CACHE_DIR` is set empty."""
    configured = os.environ.get(ENVIRONMENT_VARIABLE)
    if configured is not None:
        return pathlib.Path(configured) if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base, "tfmeta")


def file_digest(path):
    """SHA-256 of a file's content (about 30 ms for Omniglot's two zips)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_arrays(name, key, compute):
    """`compute()`'s tuple of NumPy arrays, from the cache when a readable entry for `key` is there.

    Args:
        name: a readable prefix of the entry's file name.
        key: a tuple of strings and numbers that determines the arrays.
        compute: a function returning a tuple of NumPy arrays (no object
            dtypes), called when the cache holds no readable entry.
    """
    directory = cache_dir()
    if directory is None:
        return compute()
    digest = hashlib.sha256(repr((FORMAT, *key)).encode()).hexdigest()[:20]
    path = directory / f"{name}-{digest}.npz"
    try:
        with np.load(path, allow_pickle=False) as entry:
            return tuple(entry[f"arr_{i}"] for i in range(len(entry.files)))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # missing, truncated, not an .npz
        pass
    arrays = compute()
    _write(path, arrays)
    return arrays


def _write(path, arrays):
    """Writes an entry beside its final name and renames it, so that processes decoding the same entry at once
    never read a partial file; gives up quietly where the cache cannot be written."""
    partial = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".partial", delete=False) as partial:
            np.savez(partial, *arrays)
        os.replace(partial.name, path)
    except OSError:
        if partial is not None:
            pathlib.Path(partial.name).unlink(missing_ok=True)
