"""Meta-learning algorithms, each a Keras model over pure functions."""

from tfmeta.algorithms.anil import ANIL, head_layers
from tfmeta.algorithms.ensemble import Ensemble, ensemble_log_probabilities
from tfmeta.algorithms.episodic_model import EpisodicModel
from tfmeta.algorithms.maml import (
    INFERENCE_MODES,
    MAML,
    PerStepRates,
    adapt,
    adapt_and_predict,
    adapt_and_predict_each_step,
    maml_plus_plus_config,
    multi_step_loss_weights,
    predict_queries,
)
from tfmeta.algorithms.matching_networks import (
    MatchingNetwork,
    cosine_similarity,
    matching_log_probabilities,
)
from tfmeta.algorithms.metric_learner import MetricLearner
from tfmeta.algorithms.prototypical_networks import PrototypicalNetwork, prototype_logits, prototypes
from tfmeta.algorithms.reptile import Reptile, whole_task

__all__ = [
    "ANIL",
    "INFERENCE_MODES",
    "Ensemble",
    "EpisodicModel",
    "MAML",
    "MatchingNetwork",
    "MetricLearner",
    "PerStepRates",
    "PrototypicalNetwork",
    "Reptile",
    "adapt",
    "adapt_and_predict",
    "adapt_and_predict_each_step",
    "cosine_similarity",
    "ensemble_log_probabilities",
    "head_layers",
    "maml_plus_plus_config",
    "matching_log_probabilities",
    "multi_step_loss_weights",
    "predict_queries",
    "prototype_logits",
    "prototypes",
    "whole_task",
]
