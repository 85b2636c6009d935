import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta.layers import MetaBatchNormalization


@pytest.mark.parametrize("pooling, strides", [("stride", (2, 2)), ("max", (1, 1))])
def test_omniglot_cnn_is_finns_four_block_network(pooling, strides):
    model = tfmeta.models.omniglot_cnn(ways=5, pooling=pooling)
    convs = [l for l in model.layers if l.__class__.__name__ == "Conv2D"]
    assert [(c.filters, c.kernel_size, c.strides) for c in convs] == [(64, (3, 3), strides)] * 4
    assert not any(c.use_bias for c in convs)  # batch norm follows: a bias would change nothing
    assert sum(isinstance(l, MetaBatchNormalization) for l in model.layers) == 4
    assert model.output_shape == (None, 5)
    # 28 -> 14 -> 7 -> 4 -> 2 (stride, then mean-pooled) or 28 -> 14 -> 7 -> 3 -> 1 (max-pool).
    assert model.layers[-2].output.shape == (None, 64)
    assert model(np.zeros([3, 28, 28, 1], np.float32)).shape == (3, 5)


def test_sinusoid_mlp_is_40_40_relu():
    model = tfmeta.models.sinusoid_mlp()
    dense = [l for l in model.layers if l.__class__.__name__ == "Dense"]
    assert [(d.units, d.activation.__name__) for d in dense] == [(40, "relu"), (40, "relu"), (1, "linear")]


def test_backbone_arguments_are_checked():
    with pytest.raises(ValueError, match="ways.*received ways=0"):
        tfmeta.models.omniglot_cnn(ways=0)
    with pytest.raises(ValueError, match="pooling.*received pooling='avg'"):
        tfmeta.models.omniglot_cnn(ways=5, pooling="avg")


def test_sinusoid_tasks_follow_finns_distribution_and_are_reproducible():
    stream = tfmeta.data.sinusoid_tasks(5, 7, seed=3, num_tasks=200)
    tasks = list(stream.as_numpy_iterator())
    again = list(tfmeta.data.sinusoid_tasks(5, 7, seed=3, num_tasks=200).as_numpy_iterator())
    assert len(tasks) == 200
    for task, same in zip(tasks, again):
        np.testing.assert_array_equal(task["query_x"], same["query_x"])
        assert task["support_x"].shape == (5, 1) and task["query_y"].shape == (7, 1)
        for x, y in (("support_x", "support_y"), ("query_x", "query_y")):
            np.testing.assert_allclose(task[y], task["amplitude"] * np.sin(task[x] - task["phase"]),
                                       atol=1e-5)
    amplitudes = np.array([t["amplitude"] for t in tasks])
    phases = np.array([t["phase"] for t in tasks])
    xs = np.concatenate([t["support_x"] for t in tasks])
    assert 0.1 <= amplitudes.min() and amplitudes.max() <= 5.0 and amplitudes.std() > 1.0
    assert 0.0 <= phases.min() and phases.max() <= np.pi
    assert -5.0 <= xs.min() and xs.max() <= 5.0 and xs.std() > 2.0
    batched = tfmeta.data.sinusoid_tasks(5, 7, seed=3, meta_batch_size=8)
    assert batched.element_spec["support_x"].shape == (8, 5, 1)


def test_sinusoid_arguments_are_checked():
    with pytest.raises(ValueError, match="shots.*received shots=0"):
        tfmeta.data.sinusoid_tasks(0, 5, seed=0)
    with pytest.raises(ValueError, match="amplitude_range.*low <= high"):
        tfmeta.data.sinusoid_tasks(5, 5, seed=0, amplitude_range=(5, 1))
