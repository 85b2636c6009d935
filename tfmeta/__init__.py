"""tfmeta: meta-learning (few-shot learning) for TensorFlow 2 and Keras 3."""

import os
import sys

__version__ = "0.1.0"

_SUBPACKAGES = ("algorithms", "data", "layers", "models", "serving")
_CLASSES = ("ANIL", "Ensemble", "MAML", "MatchingNetwork", "PrototypicalNetwork", "Reptile")


def _import_api():
    """Imports TensorFlow and tfmeta's public names (which registers tfmeta's Keras classes for loading)."""
    try:
        import tensorflow  # noqa: F401
    except ImportError as error:  # TensorFlow is an extra so a GPU build is never clobbered.
        raise ImportError(
            "tfmeta needs TensorFlow 2.21, which it does not install by itself so that an "
            "existing GPU build is never replaced. Install one: pip install 'tfmeta[cpu]' "
            "(CPU only) or pip install 'tfmeta[gpu]' (NVIDIA GPUs, with CUDA libraries)."
        ) from error
    import importlib

    algorithms = importlib.import_module("tfmeta.algorithms")
    for name in _SUBPACKAGES:
        importlib.import_module(f"tfmeta.{name}")  # binds tfmeta.<name>
    globals().update({name: getattr(algorithms, name) for name in _CLASSES})


def __getattr__(name):
    if name in _SUBPACKAGES or name in _CLASSES:
        _import_api()
        return globals()[name]
    raise AttributeError(f"module 'tfmeta' has no attribute {name!r}")


def _is_command_line():
    """Whether this process is the `tfmeta` command (`python -m tfmeta` runs with sys.argv[0] "-m" while it finds
    the package)."""
    return bool(sys.argv) and os.path.basename(sys.argv[0]) in ("tfmeta", "tfmeta.exe", "-m")


# The command line parses its arguments before it loads TensorFlow (3-5 s), so that --help and argument errors
# answer at once; its subcommands reach the names above through __getattr__.
if not _is_command_line():
    _import_api()

__all__ = sorted([*_CLASSES, *_SUBPACKAGES])
