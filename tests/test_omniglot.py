import collections
import hashlib
import io
import shutil
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfmeta.data import cache, episodes, load_omniglot
from tfmeta.data import omniglot


@pytest.fixture(scope="module")
def background(omniglot_dir):
    return load_omniglot("background", omniglot_dir)


def small_release(omniglot_dir, tmp_path, alphabets=("Gujarati", "Korean")):
    """A release with only a few background alphabets, as zip and as folder."""
    zipped, folder = tmp_path / "zipped", tmp_path / "folder"
    zipped.mkdir()
    with zipfile.ZipFile(omniglot_dir / "images_background.zip") as source, \
            zipfile.ZipFile(zipped / "images_background.zip", "w") as target:
        members = [m for m in source.namelist() if m.split("/")[1] in alphabets]
        for member in members:
            target.writestr(member, source.read(member))
        source.extractall(folder, members)
    return zipped, folder


def test_lake_splits_have_the_published_sizes(omniglot_dir, background):
    evaluation = load_omniglot("evaluation", omniglot_dir, rotations=False)
    assert (background.num_classes, evaluation.num_classes) == (964 * 4, 659)
    assert len(background) + 4 * len(evaluation) == 4 * 32460
    assert set(background.class_count) == {20} and set(evaluation.class_count) == {20}
    assert "Korean/character03/rot270" in background.class_names
    assert "Tengwar/character25" in evaluation.class_names


@pytest.mark.parametrize("split", ["train", "val", "test", "trainval"])
def test_vinyals_split_matches_the_published_class_lists(omniglot_dir, split):
    expected = (omniglot_dir / "splits" / "vinyals" / f"{split}.txt").read_text().split()
    data = load_omniglot(f"vinyals-{split}", omniglot_dir)
    assert data.class_names == expected
    assert set(data.class_count) == {20}


def test_images_are_ink_on_zero_background(background):
    images = background.images
    assert images.shape[1:] == (28, 28, 1) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    # Strokes are thin: most of each image is background.
    assert 0.03 < images.mean() < 0.2
    assert np.median(images) == 0.0


def test_rotation_classes_are_rotated_characters(background):
    names = background.class_names
    base = names.index("Korean/character03/rot000")
    for k, degrees in enumerate((90, 180, 270), start=1):
        rotated = names.index(f"Korean/character03/rot{degrees:03d}")
        start, count = background.class_start, background.class_count[base]
        np.testing.assert_array_equal(
            background.images[start[rotated]:start[rotated] + count],
            np.rot90(background.images[start[base]:start[base] + count], k=k, axes=(1, 2)),
        )


def test_image_size_is_honoured(omniglot_dir, tmp_path):
    zipped, _ = small_release(omniglot_dir, tmp_path, alphabets=("Korean",))
    full = load_omniglot("background", zipped, image_size=105, rotations=False)
    assert full.example_shape == (105, 105, 1)
    assert set(np.unique(full.images)) == {0.0, 1.0}  # the release is 1-bit
    # Area downsampling by 3 is the mean of each 3x3 block; a client's bilinear resize is not.
    blocks = full.images.reshape(-1, 35, 3, 35, 3, 1).mean(axis=(2, 4))
    area = load_omniglot("background", zipped, image_size=35, rotations=False)
    np.testing.assert_allclose(area.images, blocks, atol=1e-6)
    bilinear = load_omniglot("background", zipped, image_size=35, rotations=False, resize="bilinear")
    assert np.abs(bilinear.images - blocks).max() > 0.3 and 0.0 <= bilinear.images.min()
    with pytest.raises(ValueError, match="received 'lanczos'"):
        load_omniglot("background", zipped, resize="lanczos")


def test_zip_and_extracted_folder_give_identical_data(omniglot_dir, tmp_path, background):
    zipped, folder = small_release(omniglot_dir, tmp_path)
    from_zip = load_omniglot("background", zipped)
    from_folder = load_omniglot("background", folder)
    assert from_zip.num_classes == 4 * (48 + 40)  # Gujarati and Korean characters
    assert from_zip.class_names == from_folder.class_names
    np.testing.assert_array_equal(from_zip.images, from_folder.images)
    np.testing.assert_array_equal(
        from_zip.images, background.select_classes(from_zip.class_names).images
    )


def test_decoded_zips_are_cached_on_disk_and_decoded_anew_when_the_zip_changes(omniglot_dir, tmp_path,
                                                                               monkeypatch):
    monkeypatch.setenv(cache.ENVIRONMENT_VARIABLE, str(tmp_path / "cache"))
    zipped, folder = small_release(omniglot_dir, tmp_path)
    omniglot._read_release.cache_clear()  # the cache on disk, not the process's own, is under test
    decoded = load_omniglot("background", zipped)
    assert len(list((tmp_path / "cache").glob("omniglot-images_background-28-area-*.npz"))) == 1

    def no_decoding(*args):
        raise AssertionError("decoded again although the cache holds this zip")

    with monkeypatch.context() as patched:
        patched.setattr(omniglot, "_decode", no_decoding)
        omniglot._read_release.cache_clear()
        from_cache = load_omniglot("background", zipped)
    assert from_cache.class_names == load_omniglot("background", folder).class_names == decoded.class_names
    np.testing.assert_array_equal(from_cache.images, decoded.images)
    np.testing.assert_array_equal(from_cache.labels, decoded.labels)

    (tmp_path / "korean").mkdir()
    korean, _ = small_release(omniglot_dir, tmp_path / "korean", alphabets=("Korean",))
    (korean / "images_background.zip").replace(zipped / "images_background.zip")
    omniglot._read_release.cache_clear()
    changed = load_omniglot("background", zipped)
    omniglot._read_release.cache_clear()
    assert changed.num_classes == 4 * 40 and all(name.startswith("Korean/") for name in changed.class_names)
    assert len(list((tmp_path / "cache").glob("omniglot-images_background-28-area-*.npz"))) == 2


def test_tensorflow_datasets_path_gives_the_same_classes_and_images(omniglot_dir, tmp_path, mocked_tfds_omniglot):
    """Feeds the release's own images through a mocked `tfds.load("omniglot")`."""
    zipped, _ = small_release(omniglot_dir, tmp_path)
    release = load_omniglot("background", zipped, rotations=False)
    alphabets = omniglot._alphabets()
    assert len(alphabets) == 50 and alphabets == sorted(alphabets)
    labels = release.labels
    alphabet_ids = [alphabets.index(release.class_names[c].split("/")[0]) for c in labels]
    char_ids = [int(release.class_names[c].split("/character")[1]) - 1 for c in labels]
    # TFDS stores the release's 1-bit PNGs as 105x105 RGB, black ink on white.
    raw = load_omniglot("background", zipped, image_size=105, rotations=False).images
    rgb = np.repeat(((1.0 - raw) * 255).astype(np.uint8), 3, axis=-1)
    order = np.random.default_rng(0).permutation(len(rgb))  # TFDS order differs

    def as_dataset(self, split, **kwargs):
        assert split == "train"
        return tf.data.Dataset.from_tensor_slices({
            "image": rgb[order],
            "alphabet": np.array(alphabet_ids, np.int64)[order],
            "alphabet_char_id": np.array(char_ids, np.int64)[order],
            "label": np.zeros(len(rgb), np.int64),
        })

    omniglot._read_tfds.cache_clear()
    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        through_tfds = load_omniglot("background", rotations=False)
    omniglot._read_tfds.cache_clear()
    assert through_tfds.class_names == release.class_names
    assert through_tfds.class_count.tolist() == release.class_count.tolist()
    for c in range(release.num_classes):  # same images per class, in any order
        rows = slice(release.class_start[c], release.class_start[c] + release.class_count[c])
        key = lambda images: sorted(hashlib.sha1(i.tobytes()).hexdigest() for i in images)
        assert key(through_tfds.images[rows]) == key(release.images[rows])


def test_tensorflow_datasets_records_become_the_images_of_their_characters(mocked_tfds_omniglot):
    """Through TFDS's own mock of `omniglot` (its real feature names): every record is one image, of the class
    its alphabet and character ids name, with ink = 1 - gray / 255."""
    omniglot._read_tfds.cache_clear()
    with tfds.testing.mock_data(num_examples=40):
        data = load_omniglot("evaluation", image_size=105, rotations=False)
        records = list(tfds.load("omniglot", split="test").as_numpy_iterator())
    omniglot._read_tfds.cache_clear()
    alphabets = omniglot._alphabets()
    expected = collections.defaultdict(list)
    for record in records:
        name = f"{alphabets[record['alphabet']]}/character{record['alphabet_char_id'] + 1:02d}"
        expected[name].append(1.0 - record["image"][..., :1].astype(np.float32) / 255.0)
    assert data.class_names == sorted(expected) and len(data) == len(records) == 40
    key = lambda images: sorted(hashlib.sha1(np.asarray(i, np.float32).tobytes()).hexdigest() for i in images)
    for c, name in enumerate(data.class_names):
        rows = slice(data.class_start[c], data.class_start[c] + data.class_count[c])
        assert key(data.images[rows]) == key(expected[name])


def test_real_omniglot_episodes_hold_their_invariants(omniglot_dir):
    data = load_omniglot("vinyals-test", omniglot_dir)
    class_of_image = {}
    for c in range(data.num_classes):
        for image in data.images[data.class_start[c]:data.class_start[c] + data.class_count[c]]:
            class_of_image.setdefault(image.tobytes(), set()).add(c)
    for episode in episodes(data, 20, 5, 15, seed=0, meta_batch_size=4).take(3):
        for task in range(4):
            support, query = episode["support_x"][task].numpy(), episode["query_x"][task].numpy()
            keys = [image.tobytes() for image in np.concatenate([support, query])]
            assert len(set(keys)) == len(keys), "support and query share an example"
            classes = [class_of_image[k] for k in keys]
            labels = np.concatenate([episode["support_y"][task], episode["query_y"][task]])
            for label in range(20):
                common = set.intersection(*[classes[i] for i in np.flatnonzero(labels == label)])
                assert common, f"label {label} mixes classes"


def test_missing_or_malformed_release_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_omniglot("background", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="neither images_background.zip nor"):
        load_omniglot("background", tmp_path)
    (tmp_path / "images_background.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a valid zip"):
        load_omniglot("background", tmp_path)
    with zipfile.ZipFile(tmp_path / "images_background.zip", "w") as archive:
        archive.writestr("readme.txt", "no images")
    with pytest.raises(ValueError, match="holds no images"):
        load_omniglot("background", tmp_path)
    with zipfile.ZipFile(tmp_path / "images_background.zip", "w") as archive:
        archive.writestr("images_background/A/character01/0001_01.png", b"broken png")
    with pytest.raises(ValueError, match="not a valid PNG"):
        load_omniglot("background", tmp_path)


@pytest.mark.parametrize(
    "member", ["images_background/../../evil/character01/x.png", "/tmp/evil.png", "../x.png"]
)
def test_zip_members_escaping_their_folder_are_refused(tmp_path, member):
    with zipfile.ZipFile(tmp_path / "images_background.zip", "w") as archive:
        archive.writestr(member, b"")
    with pytest.raises(ValueError, match="outside its target directory"):
        load_omniglot("background", tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(split="vinyals"), "Unknown Omniglot split 'vinyals'.*vinyals-train"),
        (dict(split="background", image_size=0), "image_size.*received 0"),
        (dict(split="background", image_size=28.0), "image_size.*received 28.0"),
    ],
)
def test_bad_arguments_name_the_problem(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_omniglot(data_dir=tmp_path, **kwargs)
