"""tfmeta: meta-learning (few-shot learning) for TensorFlow 2 and Keras 3."""

__version__ = "0.1.0"

try:
    import tensorflow  # noqa: F401
except ImportError as error:  # TensorFlow is an extra so a GPU build is never clobbered.
    raise ImportError(
        "tfmeta needs TensorFlow 2.21, which it does not install by itself so that an "
        "existing GPU build is never replaced. Install one: pip install 'tfmeta[cpu]' "
        "(CPU only) or pip install 'tfmeta[gpu]' (NVIDIA GPUs, with CUDA libraries)."
    ) from error

from tfmeta import algorithms, data, layers, models, serving  # noqa: E402
from tfmeta.algorithms import ANIL, MAML, Ensemble, MatchingNetwork, PrototypicalNetwork, Reptile  # noqa: E402

__all__ = [
    "ANIL",
    "Ensemble",
    "MAML",
    "MatchingNetwork",
    "PrototypicalNetwork",
    "Reptile",
    "algorithms",
    "data",
    "layers",
    "models",
    "serving",
]
