"""Batch normalization that is exact under second-order differentiation."""

import keras
import tensorflow as tf


_FUSED_DTYPES = (tf.float16, tf.bfloat16, tf.float32)
_FUSED_MIN_EPSILON = 1.001e-5  # cuDNN's lower bound


def batch_normalize(x, gamma, beta, epsilon):
    """`gamma * (x - mean) / sqrt(variance + epsilon) + beta` over the last axis.

    Mean and (biased) variance are the batch's, taken over all axes but the
    last; the result is differentiable to any order with every dependence on
    the moments kept. Runs as TensorFlow's fused batch-norm kernel where it
    applies (float16/bfloat16/float32): about as fast as no normalization,
    with exact higher-order gradients through the registered gradient of its
    gradient. Otherwise (float64, tiny epsilon) as plain differentiable ops.

    Args:
        x: inputs `[..., features]`.
        gamma, beta: scale and offset `[features]`.
        epsilon: added to the variance.
    """
    if x.dtype in _FUSED_DTYPES and epsilon >= _FUSED_MIN_EPSILON:
        features = tf.shape(x)[-1]
        # The fused kernel takes 4-D NHWC inputs; moments over N, H, W are
        # moments over all axes but the last whatever the original rank.
        y, *_ = tf.raw_ops.FusedBatchNormV3(
            x=tf.reshape(x, [1, 1, -1, features]),
            scale=tf.cast(gamma, tf.float32),
            offset=tf.cast(beta, tf.float32),
            mean=tf.constant([], tf.float32),
            variance=tf.constant([], tf.float32),
            epsilon=epsilon,
            is_training=True,
        )
        return tf.reshape(y, tf.shape(x))
    axes = list(range(len(x.shape) - 1))
    mean = tf.reduce_mean(x, axis=axes, keepdims=True)
    centered = x - mean
    # No stop_gradient on the mean (unlike tf.nn.moments): second order needs it.
    variance = tf.reduce_mean(tf.square(centered), axis=axes, keepdims=True)
    return centered * tf.math.rsqrt(variance + epsilon) * tf.cast(gamma, x.dtype) + tf.cast(beta, x.dtype)


@keras.saving.register_keras_serializable(package="tfmeta")
class MetaBatchNormalization(keras.layers.Layer):
    """Normalizes with the statistics of the current batch, always.

    Meant for backbones adapted with MAML, in which a batch is the support or
    query set of one task. Two differences from `keras.layers.BatchNormalization`:

    - **Exact higher-order gradients.** The stock layer (TensorFlow backend)
      computes the variance as `mean((x - stop_gradient(mean))**2)`, which is
      right for first-order gradients but makes MAML's second-order
      meta-gradient wrong (tests/test_batch_normalization.py measures by how
      much). Here every dependence on the moments is kept.
    - **Batch statistics in training and inference**, and no moving averages,
      as in Finn et al.'s MAML: every forward pass (support, query,
      evaluation) normalizes with its own batch's moments, so predictions for
      a query depend on the other queries of its batch (transductive). The
      layer has no non-trainable state to drift between replicas.

    Args:
        axis: the feature axis, normalized per entry; moments are taken over
            all other axes.
        epsilon: added to the variance before the square root.
        center, scale: learn an offset `beta` / a scale `gamma`.

    Reference:
        Finn, Abbeel, Levine. Model-Agnostic Meta-Learning for Fast Adaptation
        of Deep Networks. ICML 2017.

    Example:
        >>> layer = MetaBatchNormalization()
        >>> y = layer(keras.random.normal([8, 4]))  # per-feature mean 0, variance ~1
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, int):
            raise ValueError(f"`axis` must be an integer; received axis={axis!r}.")
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be positive; received epsilon={epsilon!r}.")
        self.axis = axis
        self.epsilon = epsilon
        self.center = center
        self.scale = scale

    def build(self, input_shape):
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(f"axis={self.axis} is out of range for inputs of rank {rank}.")
        self._feature_axis = self.axis % rank
        width = input_shape[self._feature_axis]
        if width is None:
            raise ValueError(f"The feature axis {self.axis} of the input must be known; "
                             f"received input shape {input_shape}.")
        self.gamma = self.add_weight(shape=(width,), initializer="ones", name="gamma",
                                     trainable=True) if self.scale else None
        self.beta = self.add_weight(shape=(width,), initializer="zeros", name="beta",
                                    trainable=True) if self.center else None

    def call(self, inputs):
        width = inputs.shape[self._feature_axis]
        gamma = self.gamma if self.scale else tf.ones([width], self.variable_dtype)
        beta = self.beta if self.center else tf.zeros([width], self.variable_dtype)
        # Pass tensors: raw ops do not take Keras variables.
        gamma, beta = tf.convert_to_tensor(gamma), tf.convert_to_tensor(beta)
        last = len(inputs.shape) - 1
        if self._feature_axis == last:
            return batch_normalize(inputs, gamma, beta, self.epsilon)
        permutation = [a for a in range(len(inputs.shape)) if a != self._feature_axis]
        permutation.append(self._feature_axis)
        outputs = batch_normalize(tf.transpose(inputs, permutation), gamma, beta, self.epsilon)
        return tf.transpose(outputs, tf.math.invert_permutation(permutation))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
        }
