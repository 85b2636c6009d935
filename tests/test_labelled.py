import numpy as np
import pytest
import tensorflow as tf

from tfmeta.data import LabelledData


def test_groups_examples_by_class_keeping_order_within_class():
    labels = np.array([2, 0, 1, 0, 2, 2])
    images = np.arange(6)  # each image is its original position
    data = LabelledData(images, labels, ["a", "b", "c"])
    assert data.class_count.tolist() == [2, 1, 3]
    assert data.class_start.tolist() == [0, 2, 3]
    assert data.images.tolist() == [1, 3, 2, 0, 4, 5]
    assert data.labels.tolist() == [0, 0, 1, 2, 2, 2]


def test_select_classes_renumbers_in_the_given_order():
    data = LabelledData(np.arange(6), np.array([0, 1, 2, 0, 1, 2]), ["a", "b", "c"])
    picked = data.select_classes(["c", "a"])
    assert picked.class_names == ["c", "a"]
    assert picked.images.tolist() == [2, 5, 0, 3]
    assert picked.labels.tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="'z'"):
        data.select_classes(["a", "z"])


def test_from_dataset_reads_pairs_and_dicts_and_renumbers_labels():
    images = np.arange(8, dtype=np.float32).reshape(4, 2)
    labels = np.array([7, 3, 7, 3])
    pairs = LabelledData.from_dataset(tf.data.Dataset.from_tensor_slices((images, labels)))
    assert pairs.class_names == ["3", "7"]
    assert pairs.images.tolist() == [[2, 3], [6, 7], [0, 1], [4, 5]]
    dicts = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
    from_dicts = LabelledData.from_dataset(dicts, image_key="image", label_key="label")
    np.testing.assert_array_equal(from_dicts.images, pairs.images)
    with pytest.raises(ValueError, match="image_key"):
        LabelledData.from_dataset(dicts)
    with pytest.raises(ValueError, match="infinite"):
        LabelledData.from_dataset(tf.data.Dataset.from_tensor_slices((images, labels)).repeat())


@pytest.mark.parametrize(
    "images, labels, names, message",
    [
        (np.zeros([3, 2]), np.array([0, 1]), None, r"one label per example.*\(3,\).*\(2,\)"),
        (np.zeros([2, 2]), np.array([0.0, 1.0]), None, "integers"),
        (np.zeros([2, 2]), np.array([0, -1]), None, "non-negative; received -1"),
        (np.zeros([2, 2]), np.array([0, 5]), ["a", "b"], r"\[0, 2\).*received 5"),
        (np.zeros([2, 2]), np.array([0, 2]), ["a", "b", "c"], "no example.*'b'"),
        (np.zeros([0, 2]), np.zeros([0], int), None, "at least one example"),
    ],
)
def test_bad_input_names_the_problem(images, labels, names, message):
    with pytest.raises(ValueError, match=message):
        LabelledData(images, labels, names)
