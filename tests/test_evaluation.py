import numpy as np
import pytest
import tensorflow as tf

from tfmeta.baselines import pixel_nearest_neighbour
from tfmeta.evaluation import episode_accuracies, mean_confidence_interval


def test_confidence_interval_is_the_literature_convention():
    values = np.array([0.9, 0.8, 1.0, 0.7])
    mean, half_width = mean_confidence_interval(values)
    assert mean == pytest.approx(0.85)
    assert half_width == pytest.approx(1.96 * np.std(values, ddof=1) / 2)
    assert mean_confidence_interval([0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError, match="at least one value"):
        mean_confidence_interval([])


def test_pixel_nearest_neighbour_picks_the_closest_support_example():
    support_x = np.array([[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]], np.float32)
    support_y = np.array([[2, 0, 1]], np.int32)
    query_x = np.array([[[9.0, 1.0], [1.0, 8.0], [0.5, 0.5]]], np.float32)
    predicted = pixel_nearest_neighbour(support_x, support_y, query_x).numpy()
    np.testing.assert_array_equal(predicted, [[0, 1, 2]])


def test_pixel_nearest_neighbour_by_cosine_matches_a_numpy_reference():
    rng = np.random.default_rng(0)
    support_x, query_x = rng.random([3, 6, 4, 4]), rng.random([3, 9, 4, 4])
    support_y = np.tile(np.arange(6), [3, 1])
    # Scaling a support example changes its distance but not its cosine.
    support_x[:, 0] *= 5.0
    flat_s, flat_q = support_x.reshape(3, 6, -1), query_x.reshape(3, 9, -1)
    cosine = np.einsum("tqd,tsd->tqs", flat_q / np.linalg.norm(flat_q, axis=-1, keepdims=True),
                       flat_s / np.linalg.norm(flat_s, axis=-1, keepdims=True))
    distance = np.linalg.norm(flat_q[:, :, None] - flat_s[:, None], axis=-1)
    by_cosine = pixel_nearest_neighbour(support_x, support_y, query_x, metric="cosine").numpy()
    by_distance = pixel_nearest_neighbour(support_x, support_y, query_x).numpy()
    np.testing.assert_array_equal(by_cosine, cosine.argmax(-1))
    np.testing.assert_array_equal(by_distance, distance.argmin(-1))
    assert (by_cosine != by_distance).any()
    with pytest.raises(ValueError, match="received metric='manhattan'"):
        pixel_nearest_neighbour(support_x, support_y, query_x, metric="manhattan")


def meta_batches(tasks=6, size=3):
    query_y = np.tile(np.arange(4), [tasks, 1]).astype(np.int32)
    batch = {"support_x": np.zeros([tasks, 4, 2], np.float32), "support_y": query_y,
             "query_x": np.zeros([tasks, 4, 2], np.float32), "query_y": query_y}
    return tf.data.Dataset.from_tensor_slices(batch).batch(size)


def test_episode_accuracies_scores_each_episode():
    def oracle(support_x, support_y, query_x):
        return tf.one_hot(support_y, 4)  # scores: argmax is the true label here

    def half_wrong(support_x, support_y, query_x):
        return tf.concat([support_y[:, :2], (support_y[:, 2:] + 1) % 4], axis=1)

    np.testing.assert_array_equal(episode_accuracies(oracle, meta_batches(), 6, verbose=0), [1.0] * 6)
    np.testing.assert_array_equal(episode_accuracies(half_wrong, meta_batches(), 6, verbose=0), [0.5] * 6)
