"""Batch normalization that is exact under second-order differentiation."""

import contextlib
import numbers
import threading

import keras
import tensorflow as tf

_INNER_STEP = threading.local()


@contextlib.contextmanager
def inner_step(index):
    """Runs the enclosed forward passes as inner step `index` (0-based) of MAML's loop.

    Per-step layers (`MetaBatchNormalization(steps=...)`) read the index
    while they are traced and use that step's weights and statistics. MAML
    sets it around each support pass (step k) and each query pass (the index
    of the step that produced the fast weights); outside any scope it is 0.
    The index is a Python int, or a scalar integer tensor where the steps run
    in a `tf.while_loop` (MAML's inference).
    """
    previous = current_inner_step()
    _INNER_STEP.index = index
    try:
        yield
    finally:
        _INNER_STEP.index = previous


def current_inner_step():
    """The inner step index set by the innermost `inner_step` scope, else 0."""
    return getattr(_INNER_STEP, "index", 0)


def step_row(values, step, steps):
    """Row `step` of per-step `values` (one row for each of `steps` steps; later steps take the last row), for a
    Python int `step` or a scalar integer tensor."""
    if tf.is_tensor(step):
        return tf.gather(values, tf.minimum(step, steps - 1))
    return values[min(step, steps - 1)]


_REFERENCE = threading.local()


@contextlib.contextmanager
def statistics_of_first(count):
    """Normalizes the enclosed passes with the moments of each batch's first `count` examples.

    MAML's per-query inference runs the support set and the queries through
    the adapted network as one batch `[support; queries]` in this scope:
    every `MetaBatchNormalization` layer takes its moments from the support
    rows alone, so a query's output depends on the support set and on that
    query, never on the other queries. `count` is a Python int or a scalar
    integer tensor.
    """
    previous = reference_count()
    _REFERENCE.count = count
    try:
        yield
    finally:
        _REFERENCE.count = previous


def reference_count():
    """The count set by the innermost `statistics_of_first` scope, else None (the whole batch)."""
    return getattr(_REFERENCE, "count", None)


_FUSED_DTYPES = (tf.float16, tf.bfloat16, tf.float32)
_FUSED_MIN_EPSILON = 1.001e-5  # cuDNN's lower bound


def batch_normalize(x, gamma, beta, epsilon, reference=None):
    """`gamma * (x - mean) / sqrt(variance + epsilon) + beta` over the last axis.

    Mean and (biased) variance are the batch's, taken over all axes but the
    last (with `reference`, over the first `reference` examples of axis 0
    only); the result is differentiable to any order with every dependence
    on the moments kept. Runs as TensorFlow's fused batch-norm kernel where
    it applies (whole-batch moments, float16/bfloat16/float32): about as fast
    as no normalization, with exact higher-order gradients through the
    registered gradient of its gradient. Otherwise (reference rows, float64,
    tiny epsilon) as plain differentiable ops.

    Args:
        x: inputs `[batch, ..., features]`.
        gamma, beta: scale and offset `[features]`.
        epsilon: added to the variance.
        reference: None, or the number of leading examples whose moments
            normalize the whole batch (an int or a scalar integer tensor).
    """
    if reference is None and x.dtype in _FUSED_DTYPES and epsilon >= _FUSED_MIN_EPSILON:
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
    mean, variance = _moments(x if reference is None else split_rows(x, reference)[0])
    # As an affine map of x, whose statistics are of a few rows: two passes over x, and as few in the gradients.
    scale = tf.math.rsqrt(variance + epsilon) * tf.cast(gamma, x.dtype)
    return x * scale + (tf.cast(beta, x.dtype) - mean * scale)


def split_rows(x, count):
    """`(x[:count], x[count:])` along axis 0, `count` a Python int or a scalar integer tensor.

    A split rather than slices: its gradient is one concatenation, far cheaper
    than a strided slice's, and second-order MAML differentiates it at every
    normalization layer of every task.
    """
    static = isinstance(count, int) and x.shape[0] is not None
    return tf.split(x, [count, x.shape[0] - count if static else tf.shape(x)[0] - count])


def _moments(x):
    """Mean and biased variance over all axes but the last, with every gradient kept."""
    axes = list(range(len(x.shape) - 1))
    mean = tf.reduce_mean(x, axis=axes, keepdims=True)
    # No stop_gradient on the mean (unlike tf.nn.moments): second order needs it.
    variance = tf.reduce_mean(tf.square(x - mean), axis=axes, keepdims=True)
    return mean, variance


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
      as in Finn et al.'s MAML: every forward pass normalizes with its own
      batch's moments, or, inside a `statistics_of_first(n)` scope, with
      the moments of the batch's first n examples. MAML's default per-query
      inference runs `[support; queries]` in that scope with n the support
      size, so a query's prediction depends on the support set and on that
      query alone (MetaBN, Bronskill et al. 2020); its transductive
      inference normalizes the queries with their own batch's moments, so
      each prediction depends on the other queries too. The layer has no
      non-trainable state to drift between replicas.

    Per-step weights and statistics (MAML++, Antoniou et al. 2019): with
    `steps=N` the layer holds N rows of `gamma` and `beta`, and inner step k
    (from the `inner_step` scope MAML sets) uses row k; steps past the last
    row use the last one. MAML meta-learns these rows and leaves them out of
    the inner loop, as the official MAML++ code does. With
    `per_step_statistics=True` it also keeps N rows of moving mean and
    variance: every training pass of step k moves row k towards its batch's
    moments (`moving = momentum * moving + (1 - momentum) * batch`), and
    inference (`training=False`) normalizes step k's passes with row k
    instead of the batch's moments. (The official code collects such
    statistics but normalizes with the batch's moments all the same; a MAML
    trained on Omniglot and evaluated with them scored at chance, as
    docs/maml.md shows.)

    Args:
        axis: the feature axis, normalized per entry; moments are taken over
            all other axes.
        epsilon: added to the variance before the square root.
        center, scale: learn an offset `beta` / a scale `gamma`.
        steps: None (one `gamma` and `beta`), or the number of inner steps
            that get their own rows.
        per_step_statistics: keep per-step moving statistics and normalize
            with them in inference (needs `steps`).
        momentum: of the per-step moving statistics (0.9: PyTorch's 0.1).

    Reference:
        Finn, Abbeel, Levine. Model-Agnostic Meta-Learning for Fast Adaptation
        of Deep Networks. ICML 2017. Antoniou, Edwards, Storkey. How to train
        your MAML. ICLR 2019, section 4 (BNRS, BNWB). Bronskill, Gordon,
        Requeima, Nowozin, Turner. TaskNorm: Rethinking Batch Normalization
        for Meta-Learning. ICML 2020 (MetaBN).

    Example:
        >>> layer = MetaBatchNormalization()
        >>> y = layer(keras.random.normal([8, 4]))  # per-feature mean 0, variance ~1
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, steps=None, per_step_statistics=False,
                 momentum=0.9, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, int):
            raise ValueError(f"`axis` must be an integer; received axis={axis!r}.")
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be positive; received epsilon={epsilon!r}.")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise ValueError(f"`steps` must be None or a positive integer; received steps={steps!r}.")
        if per_step_statistics and steps is None:
            raise ValueError("per_step_statistics=True needs the number of steps; received steps=None.")
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum < 1:
            raise ValueError(f"`momentum` must be a number in [0, 1); received momentum={momentum!r}.")
        self.axis = axis
        self.epsilon = epsilon
        self.center = center
        self.scale = scale
        self.steps = steps
        self.per_step_statistics = bool(per_step_statistics)
        self.momentum = float(momentum)

    def build(self, input_shape):
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(f"axis={self.axis} is out of range for inputs of rank {rank}.")
        self._feature_axis = self.axis % rank
        width = input_shape[self._feature_axis]
        if width is None:
            raise ValueError(f"The feature axis {self.axis} of the input must be known; "
                             f"received input shape {input_shape}.")
        shape = (width,) if self.steps is None else (self.steps, width)
        self.gamma = self.add_weight(shape=shape, initializer="ones", name="gamma",
                                     trainable=True) if self.scale else None
        self.beta = self.add_weight(shape=shape, initializer="zeros", name="beta",
                                    trainable=True) if self.center else None
        if self.per_step_statistics:
            self.moving_mean = self.add_weight(shape=shape, initializer="zeros", name="moving_mean",
                                               trainable=False)
            self.moving_variance = self.add_weight(shape=shape, initializer="ones", name="moving_variance",
                                                   trainable=False)

    @property
    def per_step_weights(self):
        """The variables holding one row per inner step (meta-learned, not adapted in MAML's inner loop)."""
        if self.steps is None:
            return []
        return [w for w in (self.gamma, self.beta) if w is not None]

    def _row(self, weights):
        """This step's row of per-step `weights`, as a tensor."""
        weights = tf.convert_to_tensor(weights)  # raw ops do not take Keras variables
        if self.steps is None:
            return weights
        return step_row(weights, current_inner_step(), self.steps)

    def call(self, inputs, training=False):
        width = inputs.shape[self._feature_axis]
        gamma = self._row(self.gamma) if self.scale else tf.ones([width], self.variable_dtype)
        beta = self._row(self.beta) if self.center else tf.zeros([width], self.variable_dtype)
        last = len(inputs.shape) - 1
        permutation = [a for a in range(len(inputs.shape)) if a != self._feature_axis] + [self._feature_axis]
        x = inputs if self._feature_axis == last else tf.transpose(inputs, permutation)
        reference = reference_count()
        if self.per_step_statistics and not training:
            outputs = self._normalize_with_moving_statistics(x, gamma, beta)
        else:
            if self.per_step_statistics:
                self._update_moving_statistics(x if reference is None else split_rows(x, reference)[0])
            outputs = batch_normalize(x, gamma, beta, self.epsilon, reference)
        if self._feature_axis == last:
            return outputs
        return tf.transpose(outputs, tf.math.invert_permutation(permutation))

    def _normalize_with_moving_statistics(self, x, gamma, beta):
        mean = tf.cast(self._row(self.moving_mean), x.dtype)
        variance = tf.cast(self._row(self.moving_variance), x.dtype)
        return (x - mean) * tf.math.rsqrt(variance + self.epsilon) * tf.cast(gamma, x.dtype) + tf.cast(beta, x.dtype)

    def _update_moving_statistics(self, x):
        """Moves this step's row of the moving statistics towards the batch's (biased) moments."""
        axes = list(range(len(x.shape) - 1))
        batch = [tf.stop_gradient(tf.squeeze(moment, axes)) for moment in _moments(x)]
        row = tf.one_hot(min(current_inner_step(), self.steps - 1), self.steps, dtype=self.variable_dtype)[:, None]
        for moving, moment in zip((self.moving_mean, self.moving_variance), batch):
            step = (1.0 - self.momentum) * (tf.cast(moment, self.variable_dtype) - moving)
            moving.assign(moving + row * step)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "steps": self.steps,
            "per_step_statistics": self.per_step_statistics,
            "momentum": self.momentum,
        }
