import zipfile

import numpy as np
import pytest

import tfmeta
from tfmeta.baselines import pixel_nearest_neighbour


def test_lake_runs_are_twenty_within_alphabet_one_shot_episodes(omniglot_dir):
    runs = tfmeta.data.load_lake_runs(str(omniglot_dir))
    assert runs["support_x"].shape == runs["query_x"].shape == (20, 20, 28, 28, 1)
    np.testing.assert_array_equal(runs["support_y"], np.tile(np.arange(20), [20, 1]))
    for labels in runs["query_y"]:  # each run's 20 queries belong to its 20 classes, one each
        np.testing.assert_array_equal(np.sort(labels), np.arange(20))
    assert runs["support_x"].min() == 0.0 and runs["support_x"].max() == 1.0
    assert 0.02 < runs["query_x"].mean() < 0.2  # ink is 1.0 on a 0.0 background
    # Raw pixels are a weak classifier here (Lake et al.: ~20% for pixel-wise matching; 38.8% error for
    # modified Hausdorff distance), far from chance (5%) and from perfect.
    predicted = np.asarray(pixel_nearest_neighbour(runs["support_x"], runs["support_y"], runs["query_x"]))
    accuracy = (predicted == runs["query_y"]).mean()
    assert 0.1 < accuracy < 0.6, accuracy


def test_lake_runs_name_a_missing_or_broken_release(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither all_runs.zip nor an all_runs/ folder"):
        tfmeta.data.load_lake_runs(str(tmp_path))
    with zipfile.ZipFile(tmp_path / "all_runs.zip", "w") as archive:
        archive.writestr("run01/training/class01.png", b"")
    with pytest.raises(ValueError, match="lacks run01/class_labels.txt"):
        tfmeta.data.load_lake_runs(str(tmp_path))
    with zipfile.ZipFile(tmp_path / "all_runs.zip", "w") as archive:
        archive.writestr("run01/class_labels.txt", "run01/test/item01.png run01/elsewhere/class01.png\n")
    with pytest.raises(ValueError, match="unexpected line"):
        tfmeta.data.load_lake_runs(str(tmp_path))


def test_lake_training_classes_never_include_evaluation_characters(omniglot_dir):
    from tfmeta.experiments.omniglot import LAKE_VALIDATION_ALPHABETS, _lake_splits

    splits = _lake_splits(str(omniglot_dir))
    evaluation = set(tfmeta.data.load_omniglot("evaluation", str(omniglot_dir), rotations=False).class_names)
    alphabets = {part: {name.split("/")[0] for name in data.class_names} for part, data in splits.items()}
    assert not alphabets["train"] & alphabets["val"] and len(alphabets["val"]) == LAKE_VALIDATION_ALPHABETS
    for data in splits.values():
        assert not {name.rsplit("/", 1)[0] for name in data.class_names} & evaluation
    assert splits["train"].num_classes + splits["val"].num_classes == 964 * 4
