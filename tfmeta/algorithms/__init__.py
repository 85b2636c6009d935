"""Meta-learning algorithms, each a Keras model over a pure update function."""

from tfmeta.algorithms.maml import MAML, adapt, adapt_and_predict

__all__ = ["MAML", "adapt", "adapt_and_predict"]
