"""Metric-based few-shot learners: embed support and query, classify by comparison."""

import math
import numbers

import keras
import numpy as np
import tensorflow as tf

from tfmeta.algorithms.episodic_model import EpisodicModel, labels_below


def _merge_task_axis(x):
    """`[tasks, examples, ...]` -> `[tasks * examples, ...]`."""
    return tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], axis=0))


class MetricLearner(EpisodicModel):
    """An embedding network and a rule that scores queries against a support set.

    Support and query examples of all tasks in a meta-batch are embedded in
    one batch; `classify` then turns each task's embeddings into query scores
    over the task's `ways = max(support_y) + 1` classes. No fine-tuning: a
    trained model classifies against any support set, with any number of ways,
    as long as its labels are exactly `0..ways-1`, each present.

    Args:
        embedding: a built Keras model mapping an example to a vector.
    """

    def __init__(self, embedding, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(embedding, keras.Model):
            raise ValueError(f"`embedding` must be a keras.Model; received {type(embedding).__name__}.")
        if not embedding.built or len(embedding.output_shape) != 2:
            raise ValueError(
                f"`embedding` must be a built model with vector outputs [batch, features] (give it a "
                f"keras.Input); received output shape {getattr(embedding, 'output_shape', None)}."
            )
        self.embedding = embedding
        self.task_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.built = True  # its weights are the embedding's (and any a subclass adds now)

    def add_temperature(self, temperature, learn_temperature):
        """Adds the temperature, a positive scalar that multiplies cosine similarities (learned if asked).

        It is held as its logarithm, the weight `log_temperature`, so that no
        training step can make it zero or negative (a negative temperature
        turns the nearest class into the least likely).
        """
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not temperature > 0:
            raise ValueError(f"`temperature` must be positive; received temperature={temperature!r}.")
        self.learn_temperature = bool(learn_temperature)
        self.log_temperature = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(math.log(temperature)),
            trainable=self.learn_temperature, name="log_temperature")

    @property
    def temperature(self):
        """The temperature, `exp(log_temperature)`, as a tensor."""
        return tf.exp(tf.convert_to_tensor(self.log_temperature))

    def load_own_variables(self, store):
        if getattr(self, "_temperature_saved_as_value", False):
            # A file saved before the temperature was held as its logarithm stores the temperature itself.
            index = next(str(i) for i, v in enumerate(self._trainable_variables + self._non_trainable_variables)
                         if v is self.log_temperature)
            store = {key: store[key] for key in store.keys()}
            saved = float(np.asarray(store[index]))
            if not saved > 0:
                raise ValueError(f"This file's learned temperature is {saved}, which the logarithm the model now "
                                 "learns cannot hold; retrain the model.")
            store[index] = np.log(np.asarray(store[index]))
        super().load_own_variables(store)

    @property
    def example_shape(self):
        return tuple(self.embedding.input_shape[1:])

    @property
    def example_dtype(self):
        return tf.as_dtype(self.embedding.inputs[0].dtype)

    @property
    def embedding_size(self):
        return self.embedding.output_shape[-1]

    def check_first_batch(self, batch):
        for t, support_y in enumerate(batch["support_y"]):
            classes = np.unique(support_y)
            ways = int(support_y.max()) + 1
            if support_y.min() < 0 or len(classes) != ways:
                missing = sorted(set(range(ways)) - set(classes.tolist()))
                raise ValueError(
                    f"Task {t}'s support labels must be exactly 0..ways-1, each present; received "
                    f"labels {classes.tolist()} (missing {missing})."
                )
            query_y = batch["query_y"][t] if "query_y" in batch else None
            if query_y is not None and (query_y.min() < 0 or query_y.max() >= ways):
                raise ValueError(
                    f"Task {t}'s query labels must refer to its {ways} support classes [0, {ways}); "
                    f"received labels in [{query_y.min()}, {query_y.max()}]."
                )

    def label_problems(self, episodes):
        support_y = tf.cast(episodes["support_y"], tf.int32)
        ways = tf.reduce_max(support_y) + 1
        problems = labels_below(episodes, ("support_y", "query_y"), ways, "ways) (ways = max(support_y) + 1")
        # With labels in [0, ways), every class is present in a task iff it holds `ways` distinct labels.
        labels = tf.sort(support_y, axis=-1)
        distinct = 1 + tf.reduce_sum(tf.cast(labels[..., 1:] != labels[..., :-1], tf.int32), axis=-1)
        problems.append((tf.reduce_all(tf.equal(distinct, ways)),
                         "support_y must hold every label 0..ways-1 in every task; a class has no support example"))
        return problems

    def embed(self, x, training=False):
        """Embeddings of examples `[batch, ...]` -> `[batch, features]`."""
        return self.embedding(x, training=training)

    def call(self, episodes, training=False):
        """Query scores `[tasks, queries, ways]` (logits or log-probabilities)."""
        episodes = self.checked_episodes(episodes)
        support_x, query_x = episodes["support_x"], episodes["query_x"]
        tasks, support_size = tf.shape(support_x)[0], tf.shape(support_x)[1]
        embedded = self.embed(tf.concat([_merge_task_axis(support_x), _merge_task_axis(query_x)], 0),
                              training=training)
        support = tf.reshape(embedded[:tasks * support_size], [tasks, support_size, -1])
        query = tf.reshape(embedded[tasks * support_size:], [tasks, -1, self.embedding_size])
        support_y = tf.cast(episodes["support_y"], tf.int32)
        ways = tf.reduce_max(support_y) + 1
        return self.classify(support, support_y, query, ways, training)

    def classify(self, support, support_y, query, ways, training):
        """Scores `[tasks, queries, ways]` from embeddings `[tasks, examples, features]`."""
        raise NotImplementedError

    def train_step(self, data):
        before = self.state_before_step()  # the forward pass updates BN moving statistics
        episodes = self.episodes_of(data)
        _, failing = self._label_checks(episodes)
        with tf.GradientTape() as tape:
            scores = self(episodes, training=True)
            loss = self.mean_loss(episodes["query_y"], scores)
            # A LossScaleOptimizer (mixed_float16) scales the loss here and
            # unscales the gradients in apply(); apply_update lets it handle
            # its overflows.
            scaled_loss = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        counted = self.apply_update(loss, tape.gradient(scaled_loss, variables), variables, before,
                                    tf.shape(episodes["query_y"])[0], label_failing=failing)
        return self.update_metrics(loss, episodes["query_y"], scores, counted)

    def get_config(self):
        return {**super().get_config(), "embedding": keras.saving.serialize_keras_object(self.embedding)}

    def temperature_config(self):
        """The temperature's part of `get_config`, for subclasses that have one."""
        return {"temperature": float(self.temperature.numpy()), "learn_temperature": self.learn_temperature,
                "temperature_weight": "log_temperature"}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["embedding"] = keras.saving.deserialize_keras_object(config["embedding"])
        # Configs that hold a temperature but no "temperature_weight" come from files saved before
        # the temperature was learned as its logarithm: their weight holds the temperature itself.
        weight = config.pop("temperature_weight", None)
        saved_as_value = "temperature" in config and weight is None
        model = cls(**config)
        object.__setattr__(model, "_temperature_saved_as_value", saved_as_value)
        return model
