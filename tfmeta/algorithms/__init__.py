"""Meta-learning algorithms, each a Keras model over pure functions."""

from tfmeta.algorithms.episodic_model import EpisodicModel
from tfmeta.algorithms.maml import MAML, adapt, adapt_and_predict
from tfmeta.algorithms.matching_networks import (
    MatchingNetwork,
    cosine_similarity,
    matching_log_probabilities,
)
from tfmeta.algorithms.metric_learner import MetricLearner
from tfmeta.algorithms.prototypical_networks import PrototypicalNetwork, prototype_logits, prototypes

__all__ = [
    "EpisodicModel",
    "MAML",
    "MatchingNetwork",
    "MetricLearner",
    "PrototypicalNetwork",
    "adapt",
    "adapt_and_predict",
    "cosine_similarity",
    "matching_log_probabilities",
    "prototype_logits",
    "prototypes",
]
