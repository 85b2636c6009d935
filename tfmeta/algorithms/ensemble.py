"""An ensemble of few-shot classifiers: the mean of their class probabilities on each episode."""

import keras
import tensorflow as tf

from tfmeta.algorithms.maml import MAML, _check_steps
from tfmeta.algorithms.metric_learner import MetricLearner


def ensemble_log_probabilities(member_scores):
    """The log of the mean of the members' class probabilities.

    Args:
        member_scores: a list of query scores `[tasks, queries, ways]`, one per
            member: logits or log-probabilities (softmax gives each member's
            probabilities).

    Returns:
        Log-probabilities `[tasks, queries, ways]`: their softmax is the mean of
        the members' probabilities, their argmax the ensemble's prediction.
    """
    if not member_scores:
        raise ValueError("An ensemble needs at least one member's scores; received none.")
    dtype = tf.convert_to_tensor(member_scores[0]).dtype
    # log(mean(softmax)) as a log-sum-exp of log-softmaxes: finite where a member is confident, in the scores' dtype.
    log_probabilities = tf.stack([tf.nn.log_softmax(tf.cast(scores, dtype), axis=-1) for scores in member_scores])
    return tf.reduce_logsumexp(log_probabilities, axis=0) - tf.math.log(tf.cast(len(member_scores), dtype))


@keras.saving.register_keras_serializable(package="tfmeta")
class Ensemble(keras.Model):
    """Few-shot classifiers that predict together: each adapts to the episode, their probabilities are averaged.

    MAML++ reports the ensemble of the five checkpoints of a run with the best
    validation accuracy (`tfmeta train --ensemble 5` builds that one). The
    members take the same inputs and, for MAML, ANIL and Reptile, have the same
    number of ways; each adapts to the support set on its own (MAML's inner
    loop runs once per member). An ensemble predicts (`call`, `predict`,
    `tfmeta evaluate`, export for serving); it does not train.

    Args:
        members: a list of trained classifiers: of the MAML family
            (`tfmeta.MAML`, `ANIL`, `Reptile`) or metric models
            (`MatchingNetwork`, `PrototypicalNetwork`), not both.

    Reference:
        Antoniou, Edwards, Storkey. How to train your MAML. ICLR 2019,
        section 5 (the ensemble of the top-5 validation checkpoints).

    Example:
        >>> ensemble = Ensemble([keras.models.load_model(path) for path in checkpoints])
        >>> log_probabilities = ensemble(episodes)  # [tasks, queries, ways]
    """

    def __init__(self, members, **kwargs):
        super().__init__(**kwargs)
        if isinstance(members, keras.Model) or not isinstance(members, (list, tuple)) or not members:
            raise ValueError(f"`members` must be a non-empty list of tfmeta classifiers; received {members!r}.")
        for member in members:
            if not isinstance(member, (MAML, MetricLearner)) or not member.is_classifier:
                raise ValueError("Every member of an Ensemble must be a tfmeta classifier (MAML, ANIL, Reptile, "
                                 f"MatchingNetwork, PrototypicalNetwork); received {member!r}.")
        if len({isinstance(member, MAML) for member in members}) > 1:
            raise ValueError("The members of an Ensemble must be all of the MAML family (their head fixes the ways) "
                             "or all metric models (any ways); received "
                             f"{[type(member).__name__ for member in members]}.")
        for name in ("example_shape", "example_dtype", "ways"):
            values = [getattr(member, name, None) for member in members]
            if any(value != values[0] for value in values):
                raise ValueError(f"The members of an Ensemble must agree on their {name}; received {values}.")
        self.members = list(members)
        self.built = True

    is_classifier = True

    @property
    def example_shape(self):
        return self.members[0].example_shape

    @property
    def example_dtype(self):
        return self.members[0].example_dtype

    @property
    def adapts_by_gradient(self):
        """Whether the members adapt by inner gradient steps (MAML, ANIL, Reptile), which `inner_steps` sets."""
        return any(isinstance(member, MAML) for member in self.members)

    def call(self, episodes, training=False, inner_steps=None, inference=None):
        """Log of the mean of the members' query probabilities `[tasks, queries, ways]`.

        `inner_steps` and `inference` set those of the MAML-family members
        (default: each one's `eval_inner_steps` and `inference`).
        """
        maml_kwargs = {name: value for name, value in (("inner_steps", inner_steps), ("inference", inference))
                       if value is not None}
        if maml_kwargs and not self.adapts_by_gradient:
            names = " and ".join(f"`{name}`" for name in maml_kwargs)
            raise ValueError(f"{names} appl{'ies' if len(maml_kwargs) == 1 else 'y'} to MAML members only; "
                             f"received {maml_kwargs} for an ensemble of metric models.")
        if inner_steps is not None:
            _check_steps("inner_steps", inner_steps)
        scores = [member(episodes, training=training, **(maml_kwargs if isinstance(member, MAML) else {}))
                  for member in self.members]
        return ensemble_log_probabilities(scores)

    def get_config(self):
        return {**super().get_config(),
                "members": [keras.saving.serialize_keras_object(member) for member in self.members]}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["members"] = [keras.saving.deserialize_keras_object(member) for member in config["members"]]
        return cls(**config)
