import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import tfmeta
from conftest import CLASS_COLOURS, image_folder, typed, write_image
from tfmeta import cli
from tfmeta.baselines import pixel_nearest_prototype
from tfmeta.data import LabelledData, episodes
from tfmeta.data import images as image_data
from tfmeta.data.augmentation import random_flips


def luminance(colour):
    return np.round(np.dot(colour, [0.2989, 0.587, 0.114]))


def test_a_folder_loads_as_uint8_at_one_size_whatever_the_sizes_modes_and_formats(tmp_path):
    data = image_data.load_image_folder(image_folder(tmp_path), image_size=(12, 10), channels=3)
    assert data.images.dtype == np.uint8 and data.images.shape == (24, 12, 10, 3)
    assert data.class_names == sorted(CLASS_COLOURS) and data.class_count.tolist() == [6] * 4
    for c, name in enumerate(data.class_names):
        rows = data.images[data.labels == c].reshape(6, -1, 3).astype(int)
        colour = np.array(CLASS_COLOURS[name])
        # Grayscale files come back as their luminance repeated; JPEG is lossy by a few levels.
        expected = np.array([np.full(3, luminance(colour)) if i % 4 == 3 else colour for i in range(6)])
        assert np.abs(rows - expected[:, None, :]).max() <= 4, name


def test_grayscale_loading_takes_the_luminance_and_keeps_an_image_at_size_unchanged(tmp_path):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(9, 7, 1), dtype=np.uint8)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_image(tmp_path / name / "noise.png", noise)
        write_image(tmp_path / name / "flat.png", np.full((30, 20, 3), (40, 120, 220), np.uint8))
    data = image_data.load_image_folder(tmp_path, image_size=(9, 7), channels=1)
    assert data.images.shape == (4, 9, 7, 1)
    np.testing.assert_array_equal(data.images[1], noise)  # "noise.png" sorts after "flat.png"
    assert np.all(data.images[0] == luminance((40, 120, 220)))


def test_formats_tensorflow_does_not_read_are_decoded_by_pillow(tmp_path):
    pil_image = pytest.importorskip("PIL.Image")
    pixels = np.random.default_rng(1).integers(0, 256, size=(10, 8, 3), dtype=np.uint8)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        pil_image.fromarray(pixels).save(tmp_path / name / "photo.tiff")
    data = image_data.load_image_folder(tmp_path, (10, 8))
    np.testing.assert_array_equal(data.images, [pixels, pixels])


def test_uint8_images_become_float32_in_0_1_inside_the_episodes():
    pixels = np.arange(6 * 2 * 2 * 1, dtype=np.uint8).reshape(6, 2, 2, 1) * 7
    data = LabelledData(pixels, np.array([0, 0, 1, 1, 2, 2]))
    episode = next(iter(episodes(data, ways=3, shots=1, queries=1, seed=0)))
    assert episode["support_x"].dtype == tf.float32
    drawn = np.concatenate([episode["support_x"], episode["query_x"]])
    expected = pixels.astype(np.float32) / 255.0
    assert sorted(map(bytes, drawn)) == sorted(map(bytes, expected)), "each example is one image / 255"


def test_memory_is_checked_before_reading_with_the_formula_in_the_message(tmp_path):
    folder = image_folder(tmp_path / "data")
    assert image_data.dataset_bytes(24, (84, 84), 3) == 24 * 84 * 84 * 3
    needed = image_data.MEMORY_COPIES * 24 * 84 * 84 * 3
    (folder / "circle" / "0.png").write_bytes(b"not an image")  # would fail if read
    with pytest.raises(MemoryError, match=r"24 images at 84x84x3 need .* only 0\.00 GiB"):
        image_data.load_image_folder(folder, (84, 84), available_memory=needed - 1)
    with pytest.raises(ValueError, match="cannot decode .*circle/0.png"):
        image_data.load_image_folder(folder, (84, 84), available_memory=needed)
    assert image_data.available_memory_bytes() > 0


def test_bad_folders_are_refused_naming_the_path(tmp_path):
    with pytest.raises(ValueError, match=f"no image folder at {tmp_path / 'missing'}"):
        image_data.load_image_folder(tmp_path / "missing", (8, 8))
    single = image_folder(tmp_path / "single", classes={"only": (1, 2, 3)})
    with pytest.raises(ValueError, match=f"{single} holds 1 class folder.*'only'.*at least two classes"):
        image_data.load_image_folder(single, (8, 8))
    with pytest.raises(ValueError, match="image_size"):
        image_data.load_image_folder(single, (8, 0))
    with pytest.raises(ValueError, match="channels"):
        image_data.load_image_folder(single, (8, 8), channels=4)


def test_a_class_with_fewer_images_than_shots_plus_queries_is_named_at_episode_time(tmp_path):
    data = image_data.load_image_folder(image_folder(tmp_path, per_class=4), (8, 8))
    with pytest.raises(ValueError, match=r"1 \+ 5 = 6 examples .* e\.g\. 'circle' with 4"):
        episodes(data, ways=2, shots=1, queries=5, seed=0)


def test_seeded_class_splits_are_disjoint_complete_and_reproducible():
    data = LabelledData(np.zeros([50, 1], np.uint8), np.arange(50) % 25)
    splits = image_data.split_classes(data, seed=3)
    names = {part: set(d.class_names) for part, d in splits.items()}
    assert [len(names[p]) for p in image_data.SPLIT_PARTS] == [16, 4, 5]  # 64/16/20 % of 25
    assert set.union(*names.values()) == set(data.class_names) and sum(map(len, names.values())) == 25
    assert all(d.class_count.tolist() == [2] * d.num_classes for d in splits.values())
    again = image_data.split_classes(data, seed=3)
    assert {p: d.class_names for p, d in again.items()} == {p: d.class_names for p, d in splits.items()}
    assert image_data.split_classes(data, seed=4)["test"].class_names != splits["test"].class_names
    with pytest.raises(ValueError, match="at least 3 classes"):
        image_data.split_classes(LabelledData(np.zeros([2, 1]), np.array([0, 1])))


def test_a_class_split_file_selects_its_classes_and_refuses_unknown_or_shared_ones(tmp_path):
    data = LabelledData(np.arange(8)[:, None], np.arange(8) % 4, ["a", "b", "c", "d"])
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"train": ["b", "d"], "validation": ["a"], "test": ["c"]}))
    parts = image_data.apply_class_split(data, image_data.read_class_split(path))
    assert parts["train"].class_names == ["b", "d"] and parts["train"].images[:, 0].tolist() == [1, 5, 3, 7]
    path.write_text(json.dumps({"train": ["b", "x"], "validation": ["a"], "test": ["c"]}))
    with pytest.raises(ValueError, match="'train' part names 1 class.*'x'"):
        image_data.apply_class_split(data, image_data.read_class_split(path))
    path.write_text(json.dumps({"train": ["b"], "validation": ["b"], "test": ["c"]}))
    with pytest.raises(ValueError, match="class 'b' is in 'train' and 'validation'"):
        image_data.read_class_split(path)
    with pytest.raises(ValueError, match="no class-split file at"):
        image_data.read_class_split(tmp_path / "none.json")


# CIFAR-100's 20 superclasses and their classes (the CIFAR-100 page, https://www.cs.toronto.edu/~kriz/cifar.html).
CIFAR100_SUPERCLASSES = {
    "aquatic_mammals": "beaver dolphin otter seal whale", "fish": "aquarium_fish flatfish ray shark trout",
    "flowers": "orchid poppy rose sunflower tulip", "food_containers": "bottle bowl can cup plate",
    "fruit_and_vegetables": "apple mushroom orange pear sweet_pepper",
    "household_electrical_devices": "clock keyboard lamp telephone television",
    "household_furniture": "bed chair couch table wardrobe", "insects": "bee beetle butterfly caterpillar cockroach",
    "large_carnivores": "bear leopard lion tiger wolf",
    "large_man-made_outdoor_things": "bridge castle house road skyscraper",
    "large_natural_outdoor_scenes": "cloud forest mountain plain sea",
    "large_omnivores_and_herbivores": "camel cattle chimpanzee elephant kangaroo",
    "medium_mammals": "fox porcupine possum raccoon skunk",
    "non-insect_invertebrates": "crab lobster snail spider worm",
    "people": "baby boy girl man woman", "reptiles": "crocodile dinosaur lizard snake turtle",
    "small_mammals": "hamster mouse rabbit shrew squirrel",
    "trees": "maple_tree oak_tree palm_tree pine_tree willow_tree",
    "vehicles_1": "bicycle bus motorcycle pickup_truck train", "vehicles_2": "lawn_mower rocket streetcar tank tractor",
}


def test_the_shipped_benchmark_splits_have_the_papers_class_counts_and_rules():
    cifar_fs, fc100, cub = (image_data.read_class_split(name) for name in ("cifar-fs", "fc100", "cub"))
    fine = sorted(c for classes in CIFAR100_SUPERCLASSES.values() for c in classes.split())
    for split in (cifar_fs, fc100):
        assert split["label_names"] == fine and sorted(sum((split[p] for p in image_data.SPLIT_PARTS), [])) == fine
    assert [len(cifar_fs[p]) for p in image_data.SPLIT_PARTS] == [64, 16, 20]
    for part, count in zip(image_data.SPLIT_PARTS, (12, 4, 4)):  # FC100: whole superclasses per part
        superclasses = fc100["superclasses"][part]
        assert len(superclasses) == count
        assert sorted(fc100[part]) == sorted(c for s in superclasses for c in CIFAR100_SUPERCLASSES[s].split())
    # Chen et al.: class folders in order, even -> train, 1 mod 4 -> validation, 3 mod 4 -> test.
    assert [len(cub[p]) for p in image_data.SPLIT_PARTS] == [100, 50, 50]
    for part, remainders in zip(image_data.SPLIT_PARTS, ({0, 2}, {1}, {3})):
        assert {int(c) % 4 for c in cub[part]} == remainders


def test_tfds_cifar100_loads_and_splits_into_cifar_fs_and_fc100():
    with tfds.testing.mock_data(num_examples=1500):
        data = image_data.load_images("tfds:cifar100", image_size=(16, 16))
    assert data.images.dtype == np.uint8 and data.example_shape == (16, 16, 3)
    assert data.num_classes == 100 and len(data) == 1500
    for name, counts in (("cifar-fs", [64, 16, 20]), ("fc100", [60, 20, 20])):
        parts = image_data.apply_class_split(data, image_data.read_class_split(name))
        assert [parts[p].num_classes for p in image_data.SPLIT_PARTS] == counts
        assert sum(len(parts[p]) for p in image_data.SPLIT_PARTS) == 1500
    assert "poppy" in parts["train"].class_names  # flowers train in FC100


def test_tfds_caltech_birds_of_mixed_sizes_are_resized_and_named_by_label():
    with tfds.testing.mock_data(num_examples=60):
        data = image_data.load_images("tfds:caltech_birds2011", image_size=(21, 17), channels=1)
        with pytest.raises(MemoryError, match="tfds:caltech_birds2011"):
            image_data.load_tfds_images("caltech_birds2011", (21, 17), available_memory=10)
    assert data.example_shape == (21, 17, 1) and len(data) == 60
    assert all(name.isdigit() and int(name) < 200 for name in data.class_names)


@pytest.mark.parametrize("source, message", [
    ("tfds:cifar1000", "no TFDS dataset named 'cifar1000'.*did you mean cifar100"),
    ("tfds:cifar100/nope", "TFDS cannot build 'cifar100/nope'"),
    ("omniglot", "images:DIR .* or tfds:NAME"),
])
def test_bad_dataset_names_are_refused_naming_them(source, message):
    with pytest.raises(ValueError, match=message):
        image_data.load_images(source, (8, 8))


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def conv_stack_parameters(channels, widths, kernel=3):
    """Trainable parameters of bias-free convolutions each followed by batch norm (gamma, beta)."""
    sizes = [channels, *widths]
    return sum(kernel * kernel * c_in * c_out + 2 * c_out for c_in, c_out in zip(sizes, sizes[1:]))


@pytest.mark.parametrize("input_shape, side", [((84, 84, 3), 5), ((32, 32, 3), 2), ((28, 28, 1), 1)])
def test_the_miniimagenet_cnns_have_the_papers_shapes_and_parameters(input_shape, side):
    maml_cnn = tfmeta.models.miniimagenet_cnn(5, input_shape=input_shape)
    features = side * side * 32
    assert maml_cnn.output_shape == (None, 5)
    assert trainable_count(maml_cnn) == conv_stack_parameters(input_shape[-1], [32] * 4) + features * 5 + 5
    embedding = tfmeta.models.conv4_embedding(input_shape, filters=64)
    assert embedding.output_shape == (None, side * side * 64)
    assert trainable_count(embedding) == conv_stack_parameters(input_shape[-1], [64] * 4)


@pytest.mark.parametrize("global_pool", [False, True])
def test_resnet12_has_the_standard_blocks_shapes_and_parameters(global_pool):
    model = tfmeta.models.resnet12_embedding((84, 84, 3), global_pool=global_pool)
    assert model.output_shape == (None, 640 if global_pool else 5 * 5 * 640)
    sizes = [3, 64, 160, 320, 640]
    expected = sum(conv_stack_parameters(c_in, [c_out] * 3)  # three 3x3 convolutions with their norms
                   + c_in * c_out + 2 * c_out  # the 1x1 shortcut and its norm
                   for c_in, c_out in zip(sizes, sizes[1:]))
    assert trainable_count(model) == expected
    small = tfmeta.models.resnet12_embedding((20, 24, 1), widths=(4, 8))
    assert small.output_shape == (None, 5 * 6 * 8)
    x = np.random.default_rng(0).uniform(size=(2, 20, 24, 1)).astype(np.float32)
    assert np.all(np.isfinite(small(x)))


def test_maml_accepts_the_miniimagenet_cnn_for_second_order_and_refuses_resnet12s_stock_norms():
    cnn = tfmeta.models.miniimagenet_cnn(5, input_shape=(16, 16, 3), filters=4)
    tfmeta.MAML(cnn)
    tfmeta.MAML(tfmeta.models.with_pixel_normalization(cnn, [0.5] * 3, [0.25] * 3))  # constants, not weights
    embedding = tfmeta.models.resnet12_embedding((16, 16, 3), widths=(4,))
    classifier = keras.Sequential([embedding, keras.layers.Dense(5)])
    with pytest.raises(ValueError, match="block0_norm0.*MetaBatchNormalization"):
        tfmeta.MAML(classifier)
    tfmeta.MAML(classifier, first_order=True)


def test_pixel_normalization_is_inside_the_model_saved_with_it_and_recorded(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(30, 16, 16, 3), dtype=np.uint8)
    mean, std = tfmeta.models.pixel_statistics(pixels, chunk=7)  # chunks that do not divide the images
    as_float = pixels.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(mean, as_float.mean(0))
    np.testing.assert_allclose(std, as_float.std(0))
    backbone = tfmeta.models.conv4_embedding((16, 16, 3), filters=4)
    model = tfmeta.models.with_pixel_normalization(backbone, mean, std)
    x = pixels[:4].astype(np.float32) / 255.0
    np.testing.assert_allclose(model(x), backbone((x - mean) / std), atol=1e-5)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
    record = tfmeta.models.pixel_normalization_record(loaded)
    np.testing.assert_allclose(record["mean"], mean, rtol=1e-6)
    np.testing.assert_allclose(record["std"], std, rtol=1e-6)
    assert tfmeta.models.pixel_normalization_record(backbone) is None
    with pytest.raises(ValueError, match="one value per channel"):
        tfmeta.models.with_pixel_normalization(backbone, [0.5], [0.2])


def test_pixel_nearest_prototype_matches_a_numpy_reference():
    rng = np.random.default_rng(0)
    support_x, query_x = rng.normal(size=(3, 8, 4, 2)), rng.normal(size=(3, 5, 4, 2))
    support_y = np.tile([0, 1, 2, 3, 0, 1, 2, 3], [3, 1])
    predicted = pixel_nearest_prototype(support_x, support_y, query_x, ways=4).numpy()
    for task in range(3):
        flat_support, flat_query = support_x[task].reshape(8, -1), query_x[task].reshape(5, -1)
        prototypes = np.stack([flat_support[support_y[task] == c].mean(0) for c in range(4)])
        distances = ((flat_query[:, None, :] - prototypes[None]) ** 2).sum(-1)
        np.testing.assert_array_equal(predicted[task], distances.argmin(1))


def client_pixels(path, height, width):
    """What a client does, in plain TensorFlow: decode, resize as the model card says, divide by 255."""
    image = tf.io.decode_image(path.read_bytes(), channels=3, expand_animations=False)
    resized = tf.image.resize(image, (height, width), method="bilinear", antialias=True)
    return (tf.clip_by_value(tf.round(resized), 0, 255) / 255.0).numpy().astype(np.float32)


def test_an_image_folder_trains_exports_and_serves_requests_built_from_image_files(tmp_path, monkeypatch):
    folder = image_folder(tmp_path / "photos", per_class=4, classes={
        f"c{i}": tuple(int(v) for v in np.random.default_rng(i).integers(0, 256, 3)) for i in range(10)})
    monkeypatch.chdir(tmp_path)
    cli.main(["train", "--algorithm", "protonet", "--dataset", "images:photos", "--image-size", "16", "16",
              "--ways", "2", "--shots", "1", "--queries", "1", "--meta-batch", "2", "--iterations", "2",
              "--iterations-per-epoch", "2", "--val-episodes", "2", "--test-episodes", "2"])
    run = tmp_path / "runs" / "photos-protonet-2w1s"
    results = json.loads((run / "results.json").read_text())
    assert results["image_shape"] == [16, 16, 3] and 0 <= results["pixel_prototype_accuracy"] <= 1
    assert results["augmentation"] == "crop-flip"  # the metric learners' default
    # The classes of each part are recorded, and are the seeded split's; so is the split's name.
    reference = image_data.split_classes(image_data.load_image_folder(folder, (16, 16)), seed=0)
    assert results["classes"] == {part: data.class_names for part, data in reference.items()}
    assert results["split"] == results["config"]["split"] == "seeded class fractions 64/16/20% (--seed 0)"
    cli.main(["export", str(run / "model.keras"), "served"])
    card = json.loads((tmp_path / "served" / "model.json").read_text())
    assert card["classes"] == results["classes"] and card["split"] == results["split"]
    assert card["input_range"] == [0.0, 1.0] and "16x16x3 (RGB)" in card["input_convention"]
    assert card["preprocessing"]["image_size"] == [16, 16] and card["preprocessing"]["channels"] == 3
    model = keras.models.load_model(run / "model.keras")
    mean, std = tfmeta.models.pixel_statistics(reference["train"].images)
    np.testing.assert_allclose(card["preprocessing"]["pixel_normalization"]["mean"], mean, rtol=1e-6)
    np.testing.assert_allclose(card["preprocessing"]["pixel_normalization"]["std"], std, rtol=1e-6)

    files = {name: sorted((folder / name).iterdir()) for name in ("c3", "c7")}
    request = {
        "support_x": np.stack([client_pixels(files[name][0], 16, 16) for name in files]),
        "support_y": np.array([0, 1], np.int32),
        "query_x": np.stack([client_pixels(path, 16, 16) for name in files for path in files[name][1:]]),
    }
    loaded = image_data.load_image_folder(folder, (16, 16)).images
    np.testing.assert_array_equal(np.round(request["support_x"][0] * 255), loaded[3 * 4])  # as in training
    serve = tf.saved_model.load(str(tmp_path / "served" / "1")).signatures["serving_default"]
    served = serve(**{key: tf.constant(value) for key, value in request.items()})["probabilities"].numpy()
    in_process = tf.nn.softmax(model({key: value[None] for key, value in request.items()}, training=False))[0]
    np.testing.assert_allclose(served, in_process, atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"values must lie in \[0.0, 1.0\]"):
        serve(**{key: tf.constant(value * (255 if key != "support_y" else 1)) for key, value in request.items()})
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor but is a uint8"):
        serve(**{key: tf.constant(np.round(value * 255).astype(np.uint8) if key != "support_y" else value)
                 for key, value in request.items()})

    cli.main(["evaluate", str(tmp_path / "served"), "--dataset", "images:photos", "--ways", "2", "--queries", "1",
              "--episodes", "4", "--output", "evaluation.json"])
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())["evaluation"]
    assert evaluation["dataset"] == "images:photos" and evaluation["test_episodes"] == 4
    assert {"accuracy", "pixel_prototype_accuracy"} <= set(evaluation)

    # Typed without --dataset, evaluate takes the card's dataset and test classes: the same episodes as naming them
    # in a class-split file.
    episodes = ["--ways", "2", "--queries", "1", "--episodes", "4"]
    completed, stderr, _, _ = typed(f"python -m tfmeta evaluate served {' '.join(episodes)} --output own.json",
                                    cwd=tmp_path)
    assert completed.returncode == 0, stderr[-2000:]
    (tmp_path / "split.json").write_text(json.dumps(results["classes"]))
    cli.main(["evaluate", "served", "--dataset", "images:photos", "--class-split", "split.json", *episodes,
              "--output", "named.json"])
    own, named = (json.loads((tmp_path / name).read_text())["evaluation"] for name in ("own.json", "named.json"))
    assert own["dataset"] == "images:photos" and own["split"] == "the test classes of its training run"
    for key in ("accuracy", "pixel_prototype_accuracy", "test_episodes"):
        assert own[key] == named[key]
    # A model of unknown data is not evaluated on Omniglot: one line names both shapes.
    (tmp_path / "alone").mkdir()
    (run / "model.keras").rename(tmp_path / "alone" / "model.keras")
    completed, stderr, _, _ = typed("python -m tfmeta evaluate alone/model.keras", cwd=tmp_path)
    assert completed.returncode == 1 and "Traceback" not in stderr
    assert stderr.splitlines()[-1] == ("tfmeta evaluate: alone/model.keras takes inputs of shape (16, 16, 3), but "
                                       "Omniglot's are (28, 28, 1); name its data with --dataset")


def test_random_flips_mirror_about_half_the_images_seeded_and_resumable():
    images = np.random.default_rng(0).uniform(size=(4, 6, 5, 7, 3)).astype(np.float32)
    stream = tf.data.Dataset.from_tensor_slices({"support_x": images, "query_x": images[:, :2]})
    flipped = [e["support_x"].numpy() for e in random_flips(stream, seed=1)]
    mirrored = [[np.array_equal(f, o[:, ::-1]) for f, o in zip(out, original)]
                for out, original in zip(flipped, images)]
    kept = [[np.array_equal(f, o) for f, o in zip(out, original)] for out, original in zip(flipped, images)]
    assert np.all(np.logical_xor(mirrored, kept)), "each image is itself or its mirror"
    assert 6 <= np.sum(mirrored) <= 18  # of 24, binomial(24, 1/2)
    resumed = [e["support_x"].numpy() for e in random_flips(stream.skip(2), seed=1, start=2)]
    np.testing.assert_array_equal(resumed, flipped[2:])
    assert not np.array_equal([e["support_x"].numpy() for e in random_flips(stream, seed=2)], flipped)


@pytest.mark.parametrize("flags, message", [
    (["--dataset", "images:{single}"], "{single} holds 1 class folder"),
    (["--dataset", "images:{photos}", "--image-size", "8", "8"], "8x8 are too small .* at least 16 16"),
    (["--dataset", "images:{photos}", "--class-split", "{photos}/none.json"], "no class-split file at"),
    (["--dataset", "images:{photos}", "--image-size", "16", "16", "--ways", "1", "--shots", "5"],
     r"images:.*photos: shots \+ queries = 5 \+ 15"),
    (["--dataset", "tfds:no_such_images"], "no TFDS dataset named 'no_such_images'"),
    # 4 classes split 64/16/20%: the part that is too small for the default 5 ways, and what to change.
    (["--dataset", "images:{photos}", "--image-size", "16", "16"],
     r"the train part of the class split has 2 classes \(train/validation/test 2/1/1\), fewer than the 5 ways of "
     r"its episodes; use --ways \(and --train-ways\) of at most 2, or a --class-split file"),
])
def test_tfmeta_train_stops_on_bad_image_input_naming_it(flags, message, tmp_path):
    paths = {"single": image_folder(tmp_path / "single", classes={"only": (1, 2, 3)}),
             "photos": image_folder(tmp_path / "photos")}
    flags = [flag.format(**paths) for flag in flags]
    with pytest.raises(SystemExit, match=message.format(**paths)):
        cli.main(["train", "--algorithm", "protonet", "--output-dir", str(tmp_path / "run"), *flags])
