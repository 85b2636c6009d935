import collections

import numpy as np
import pytest

from tfmeta.data import LabelledData, episodes, evaluation_episodes, fitting_meta_batch_size


def synthetic_data(num_classes=12, seed=0):
    """Classes of unequal size; each example is its own id, its class known."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), 5 + np.arange(num_classes))
    labels = rng.permutation(labels)
    ids = np.arange(labels.size)
    return LabelledData(ids[:, None], labels), dict(zip(ids, labels))


def take(stream, n):
    return [{k: v.numpy() for k, v in e.items()} for e in stream.take(n)]


def check_episode(episode, class_of, ways, shots, queries):
    support = episode["support_x"][:, 0]
    query = episode["query_x"][:, 0]
    assert support.shape == (ways * shots,) and query.shape == (ways * queries,)
    np.testing.assert_array_equal(np.sort(episode["support_y"]), np.repeat(np.arange(ways), shots))
    np.testing.assert_array_equal(np.sort(episode["query_y"]), np.repeat(np.arange(ways), queries))
    assert len(set(support) | set(query)) == support.size + query.size, "an example repeats"
    label_to_class = {}
    for ids, labels in ((support, episode["support_y"]), (query, episode["query_y"])):
        for example, label in zip(ids, labels):
            assert label_to_class.setdefault(label, class_of[example]) == class_of[example]
    assert len(set(label_to_class.values())) == ways, "two labels share a class"
    return tuple(label_to_class[label] for label in range(ways))


@pytest.mark.parametrize("ways, shots, queries", [(5, 1, 4), (3, 2, 3), (12, 1, 1)])
def test_episodes_hold_their_invariants(ways, shots, queries):
    data, class_of = synthetic_data()
    for episode in take(episodes(data, ways, shots, queries, seed=1), 200):
        check_episode(episode, class_of, ways, shots, queries)


def test_classes_and_label_order_are_fresh_and_uniform():
    data, class_of = synthetic_data()
    orders = [check_episode(e, class_of, 5, 1, 1) for e in take(episodes(data, 5, 1, 1, seed=3), 1200)]
    assert len(set(orders)) > 1100, "class choice or label order repeats"
    # Each class should be label 0 in about 1/12 of the episodes (100 of 1200).
    first = collections.Counter(order[0] for order in orders)
    assert set(first) == set(range(12)) and max(first.values()) < 150 and min(first.values()) > 60
    # Examples within a class are drawn uniformly: class 11 has 16 examples.
    data_ids = [e["support_x"][i, 0] for e in take(episodes(data, 12, 1, 1, seed=4), 1600)
                for i in range(12) if class_of[e["support_x"][i, 0]] == 11]
    counts = collections.Counter(data_ids)
    assert len(counts) == 16 and max(counts.values()) < 160 and min(counts.values()) > 50


def test_a_seed_reproduces_the_stream_and_another_seed_changes_it():
    data, _ = synthetic_data()
    first = take(episodes(data, 4, 2, 2, seed=7), 20)
    again = take(episodes(data, 4, 2, 2, seed=7), 20)
    other = take(episodes(data, 4, 2, 2, seed=8), 20)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["support_x"], b["support_x"])
        np.testing.assert_array_equal(a["query_x"], b["query_x"])
    assert any((a["support_x"] != c["support_x"]).any() for a, c in zip(first, other))


def test_examples_are_shuffled_within_each_set_unless_asked_not_to():
    data, class_of = synthetic_data()
    shuffled = take(episodes(data, 5, 2, 3, seed=2), 50)
    in_class_order = take(episodes(data, 5, 2, 3, seed=2, shuffle=False), 50)
    for a, b in zip(shuffled, in_class_order):
        np.testing.assert_array_equal(b["support_y"], np.repeat(np.arange(5), 2))
        np.testing.assert_array_equal(b["query_y"], np.repeat(np.arange(5), 3))
        for key in ("support", "query"):  # the same examples with the same labels, in another order
            assert sorted(zip(a[f"{key}_x"][:, 0], a[f"{key}_y"])) == sorted(zip(b[f"{key}_x"][:, 0], b[f"{key}_y"]))
    assert sum((a["support_y"] != b["support_y"]).any() for a, b in zip(shuffled, in_class_order)) > 45
    assert sum((a["query_y"] != b["query_y"]).any() for a, b in zip(shuffled, in_class_order)) > 45


def test_meta_batches_have_a_static_task_axis_and_drop_no_episode():
    data, class_of = synthetic_data()
    stream = episodes(data, 5, 1, 3, seed=0, num_episodes=8, meta_batch_size=4)
    assert stream.element_spec["support_x"].shape.as_list() == [4, 5, 1]
    assert stream.element_spec["query_y"].shape.as_list() == [4, 15]
    batches = take(stream, 10)
    assert len(batches) == 2
    unbatched = take(episodes(data, 5, 1, 3, seed=0, num_episodes=8), 8)
    np.testing.assert_array_equal(batches[1]["query_x"][3], unbatched[7]["query_x"])
    with pytest.raises(ValueError, match="num_episodes=10 is not a multiple of meta_batch_size=4: the last 2 "
                                         "would be dropped.*e.g. 10"):
        episodes(data, 5, 1, 3, seed=0, num_episodes=10, meta_batch_size=4)
    assert [fitting_meta_batch_size(n) for n in (1000, 200, 60, 50, 7, 2)] == [25, 25, 20, 25, 7, 2]
    assert fitting_meta_batch_size(997) == 1 and fitting_meta_batch_size(1000, largest=100) == 100


def test_evaluation_episodes_are_fixed_and_finite():
    data, class_of = synthetic_data()
    first = take(evaluation_episodes(data, 5, 1, 2, num_episodes=30), 100)
    second = take(evaluation_episodes(data, 5, 1, 2, num_episodes=30), 100)
    assert len(first) == 30
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a["support_x"], b["support_x"])
        check_episode(a, class_of, 5, 1, 2)


def test_episodes_preserve_image_shape_and_dtype():
    images = np.random.default_rng(0).random([20, 3, 4, 2]).astype(np.float32)
    data = LabelledData(images, np.arange(20) % 4)
    episode = take(episodes(data, 4, 2, 3, seed=0), 1)[0]
    assert episode["support_x"].shape == (8, 3, 4, 2) and episode["support_x"].dtype == np.float32

    def class_of(image):
        return data.labels[np.flatnonzero((data.images == image).all(axis=(1, 2, 3)))[0]]

    # Examples with one label come from one class.
    for label in range(4):
        classes = {class_of(x) for key in ("support", "query")
                   for x, y in zip(episode[f"{key}_x"], episode[f"{key}_y"]) if y == label}
        assert len(classes) == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(ways=13), "ways=13 exceeds the 12 classes"),
        (dict(shots=3, queries=3), r"3 \+ 3 = 6 examples.*'0' with 5"),
        (dict(ways=0), "ways.*positive integer.*ways=0"),
        (dict(shots=1.5), "shots.*positive integer.*shots=1.5"),
        (dict(queries=True), "queries.*positive integer"),
        (dict(seed="0"), "seed.*integer.*'0'"),
        (dict(num_episodes=0), "num_episodes.*received num_episodes=0"),
        (dict(meta_batch_size=-2), "meta_batch_size.*-2"),
    ],
)
def test_bad_episode_arguments_name_the_problem(kwargs, message):
    data, _ = synthetic_data()
    arguments = dict(ways=5, shots=1, queries=1, seed=0) | kwargs
    with pytest.raises(ValueError, match=message):
        episodes(data, **arguments)


def test_episodes_need_labelled_data():
    with pytest.raises(TypeError, match="LabelledData"):
        episodes(np.zeros([10, 2]), 2, 1, 1, seed=0)


def test_a_stream_started_at_n_continues_the_stream_after_n_episodes():
    data = LabelledData(np.arange(60, dtype=np.float32)[:, None], np.repeat(np.arange(6), 10))
    whole = list(episodes(data, 3, 1, 2, seed=4, num_episodes=10).as_numpy_iterator())
    resumed = list(episodes(data, 3, 1, 2, seed=4, num_episodes=6, start=4).as_numpy_iterator())
    for expected, actual in zip(whole[4:], resumed):
        np.testing.assert_array_equal(expected["support_x"], actual["support_x"])
        np.testing.assert_array_equal(expected["query_x"], actual["query_x"])
    endless = next(iter(episodes(data, 3, 1, 2, seed=4, start=9)))
    np.testing.assert_array_equal(endless["query_x"], whole[9]["query_x"])
    with pytest.raises(ValueError, match="start.*received start=-1"):
        episodes(data, 3, 1, 2, seed=4, start=-1)


def test_class_groups_keep_each_episode_within_one_group():
    data, class_of = synthetic_data()
    group_of = {c: f"alphabet{c % 3}" for c in range(12)}  # 3 groups of 4 classes
    groups = [group_of[c] for c in range(12)]
    chosen = collections.Counter()
    for episode in take(episodes(data, 3, 1, 2, seed=5, class_groups=groups), 600):
        classes = check_episode(episode, class_of, 3, 1, 2)
        assert len({group_of[c] for c in classes}) == 1, classes
        chosen[group_of[classes[0]]] += 1
    assert set(chosen) == set(group_of.values()) and min(chosen.values()) > 150  # ~200 each
    # Only groups with at least `ways` classes are drawn.
    groups[:6] = ["big"] * 6  # the other groups keep 2 classes each
    for episode in take(episodes(data, 4, 1, 1, seed=6, class_groups=groups), 100):
        assert {groups[c] for c in check_episode(episode, class_of, 4, 1, 1)} == {"big"}


@pytest.mark.parametrize("groups, message", [
    ([0, 1] * 6, r"ways=7 exceeds the largest class group \(0 with 6 classes\)"),
    ([0] * 11, r"one group per class \(12\); received shape \(11,\)"),
])
def test_bad_class_groups_name_the_problem(groups, message):
    data, _ = synthetic_data()
    with pytest.raises(ValueError, match=message):
        episodes(data, 7, 1, 1, seed=0, class_groups=groups)
