"""Layer and group normalization that are exact under second-order differentiation.

Keras's `LayerNormalization` and `GroupNormalization` take their statistics
with `keras.ops.moments`, which on TensorFlow is `tf.nn.moments`: its
variance is `mean((x - stop_gradient(mean))**2)`. The value is right and so
is every first-order gradient, but the gradient of a gradient misses the
dependence of the variance on the mean, so second-order MAML's meta-gradient
is wrong through them (tests/test_batch_normalization.py measures by how
much). These subclasses compute the same outputs with the variance as
`mean((x - mean)**2)`; they take the same arguments and weights.
"""

import keras
import tensorflow as tf


def exact_moments(x, axes):
    """Mean and biased variance over `axes` (kept), differentiable to any order."""
    mean = tf.reduce_mean(x, axis=axes, keepdims=True)
    variance = tf.reduce_mean(tf.square(x - mean), axis=axes, keepdims=True)
    return mean, variance


def _float32_at_least(x):
    return tf.cast(x, tf.float32) if x.dtype in (tf.float16, tf.bfloat16) else x


@keras.saving.register_keras_serializable(package="tfmeta")
class MetaLayerNormalization(keras.layers.LayerNormalization):
    """`keras.layers.LayerNormalization` with exact higher-order gradients.

    Same arguments, weights and outputs as the Keras layer; for MAML
    backbones, which differentiate through the inner loop's gradients.
    """

    def call(self, inputs):
        if self.rms_scaling:  # Keras's rms path uses tf.math.reduce_variance, which is exact
            return super().call(inputs)
        x = _float32_at_least(tf.convert_to_tensor(inputs))
        rank = len(x.shape)
        axes = sorted(a % rank for a in self.axis)
        mean, variance = exact_moments(x, axes)
        broadcast = [x.shape[a] if a in axes else 1 for a in range(rank)]
        outputs = (x - mean) * tf.math.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            outputs = outputs * tf.reshape(tf.cast(self.gamma, x.dtype), broadcast)
        if self.beta is not None:
            outputs = outputs + tf.reshape(tf.cast(self.beta, x.dtype), broadcast)
        return tf.cast(outputs, self.compute_dtype)


@keras.saving.register_keras_serializable(package="tfmeta")
class MetaGroupNormalization(keras.layers.GroupNormalization):
    """`keras.layers.GroupNormalization` with exact higher-order gradients.

    Same arguments, weights and outputs as the Keras layer; for MAML
    backbones, which differentiate through the inner loop's gradients.
    """

    def call(self, inputs):
        x = tf.convert_to_tensor(inputs)
        rank = len(x.shape)
        axis = self.axis % rank
        channels = x.shape[axis]
        # [batch, ..., groups, channels // groups, ...]: statistics over all
        # axes but the batch and the group axis.
        shape = tf.shape(x)
        grouped_shape = tf.concat([shape[:axis], [self.groups, channels // self.groups], shape[axis + 1:]], 0)
        grouped = _float32_at_least(tf.reshape(x, grouped_shape))
        axes = [a for a in range(1, rank + 1) if a != axis]
        mean, variance = exact_moments(grouped, axes)
        outputs = tf.reshape((grouped - mean) * tf.math.rsqrt(variance + self.epsilon), shape)
        broadcast = [channels if a == axis else 1 for a in range(rank)]
        if self.scale:
            outputs = outputs * tf.reshape(tf.cast(self.gamma, outputs.dtype), broadcast)
        if self.center:
            outputs = outputs + tf.reshape(tf.cast(self.beta, outputs.dtype), broadcast)
        return tf.cast(outputs, self.compute_dtype)
