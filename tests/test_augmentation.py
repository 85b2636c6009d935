"""Training augmentation: seeded pixel shifts of episode streams, and Omniglot's mix of downsamplings."""

import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta.data.augmentation import random_shifts, shift_images
from conftest import random_episodes


def numpy_shift(image, dy, dx):
    """`image` [H, W, C] moved down by dy and right by dx pixels, zeros shifted in."""
    height, width = image.shape[:2]
    shifted = np.zeros_like(image)
    shifted[max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = \
        image[max(-dy, 0):height - max(dy, 0), max(-dx, 0):width - max(dx, 0)]
    return shifted


def test_shift_images_matches_a_numpy_reference():
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(2, 3, 6, 5, 2)).astype(np.float32)  # leading axes: tasks, examples
    offsets = rng.integers(-2, 3, size=(2, 3, 2)).astype(np.int32)
    shifted = shift_images(tf.constant(images), tf.constant(offsets), max_shift=2).numpy()
    for index in np.ndindex(2, 3):
        np.testing.assert_array_equal(shifted[index], numpy_shift(images[index], *offsets[index]))


def stream_of(episodes, length=4):
    return tf.data.Dataset.from_tensors(episodes).repeat(length)


def test_random_shifts_move_each_image_by_at_most_max_shift_and_keep_labels():
    episodes = random_episodes((8, 8, 1), tasks=2, ways=3, shots=2, queries=3)
    for original, shifted in zip([episodes] * 4, random_shifts(stream_of(episodes), max_shift=1, seed=0)):
        for key in ("support_y", "query_y"):
            np.testing.assert_array_equal(shifted[key], original[key])
        for key in ("support_x", "query_x"):
            images, moved = original[key].reshape(-1, 8, 8, 1), shifted[key].numpy().reshape(-1, 8, 8, 1)
            for image, result in zip(images, moved):
                candidates = [numpy_shift(image, dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
                assert any(np.array_equal(result, candidate) for candidate in candidates)
    distinct = {shifted["query_x"].numpy().tobytes() for shifted in random_shifts(stream_of(episodes), 1, 0)}
    assert len(distinct) == 4, "every element of the stream draws its own offsets"


def test_random_shifts_are_seeded_and_resume_at_start():
    episodes = random_episodes((8, 8, 1))
    first = [e["support_x"].numpy() for e in random_shifts(stream_of(episodes, 4), 1, seed=3)]
    again = [e["support_x"].numpy() for e in random_shifts(stream_of(episodes, 4), 1, seed=3)]
    resumed = [e["support_x"].numpy() for e in random_shifts(stream_of(episodes, 2), 1, seed=3, start=2)]
    other = [e["support_x"].numpy() for e in random_shifts(stream_of(episodes, 4), 1, seed=4)]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    np.testing.assert_array_equal(np.stack(first[2:]), np.stack(resumed))
    assert not np.array_equal(np.stack(first), np.stack(other))


@pytest.mark.parametrize("kwargs, message", [({"max_shift": 0}, "max_shift"), ({"max_shift": 1, "seed": 1.5}, "seed")])
def test_bad_shift_arguments_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        random_shifts(stream_of(random_episodes((8, 8, 1))), **{"seed": 0, **kwargs})


def test_a_tuple_of_resize_methods_downsamples_each_drawing_by_one_of_them(omniglot_dir):
    views = {method: tfmeta.data.load_omniglot("background", omniglot_dir, rotations=False, resize=method).images
             for method in ("area", "bilinear")}
    mixed = tfmeta.data.load_omniglot("background", omniglot_dir, rotations=False, resize=("area", "bilinear"))
    is_area = np.all(mixed.images == views["area"], axis=(1, 2, 3))
    is_bilinear = np.all(mixed.images == views["bilinear"], axis=(1, 2, 3))
    assert np.all(is_area | is_bilinear)
    assert 0.45 < np.mean(~is_area) < 0.55  # a fair draw between the two
    again = tfmeta.data.load_omniglot("background", omniglot_dir, rotations=False, resize=("area", "bilinear"))
    np.testing.assert_array_equal(mixed.images, again.images)
    with pytest.raises(ValueError, match=r"`resize` must be one of .*received \('area', 'nearest'\)"):
        tfmeta.data.load_omniglot("background", omniglot_dir, resize=("area", "nearest"))
