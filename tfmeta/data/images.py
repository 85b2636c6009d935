"""Image datasets for few-shot learning: a folder of class folders or a TFDS dataset, held as uint8.

Images are read once, resized to one size, and kept in memory as uint8 (a
quarter of float32's memory); the episode pipeline turns them into float32
in [0, 1] (`tfmeta.data.episodes`). Few-shot learning tests on classes never
seen in training, so datasets are split by class: seeded fractions, or a
class-split file naming the classes of each part (`read_class_split`, with
the standard CIFAR-FS, FC100 and CUB-200-2011 splits shipped in
`BENCHMARK_SPLITS`).
"""

import difflib
import importlib.resources
import json
import numbers
import os
import pathlib

import numpy as np
import tensorflow as tf

from tfmeta.data.labelled import LabelledData

SPLIT_PARTS = ("train", "validation", "test")
# The standard class splits that can be built from TFDS, by the name --class-split also accepts.
BENCHMARK_SPLITS = {"cifar-fs": "cifar_fs.json", "fc100": "fc100.json", "cub": "cub.json"}
# Class fractions of the seeded default split: miniImageNet's and CIFAR-FS's 64/16/20.
DEFAULT_FRACTIONS = (0.64, 0.16, 0.20)
# Peak memory of a dataset in units of its array: the array itself plus the copy the episode
# pipeline makes of it (a TensorFlow constant).
MEMORY_COPIES = 2


def check_image_settings(image_size, channels):
    """Raises a `ValueError` unless `image_size` is `(height, width)` of positive integers and
    `channels` 1 (grayscale) or 3 (RGB)."""
    if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in image_size)):
        raise ValueError(f"`image_size` must be (height, width), two positive integers; received "
                         f"image_size={image_size!r}.")
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 (grayscale) or 3 (RGB); received channels={channels!r}.")


def dataset_bytes(num_images, image_size, channels):
    """Bytes of `num_images` uint8 images of `image_size` and `channels`: N * H * W * C."""
    return int(num_images) * int(image_size[0]) * int(image_size[1]) * int(channels)


def available_memory_bytes():
    """Memory available to a new allocation: MemAvailable of /proc/meminfo (Linux), else the
    free physical pages (`os.sysconf`), else None when the system tells neither."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_in_memory(source, num_images, image_size, channels, available=None):
    """Raises a `MemoryError` naming `source` when `num_images` images will not fit in memory.

    The dataset needs `MEMORY_COPIES * N * H * W * C` bytes at its peak (the
    uint8 array and the episode pipeline's copy of it); `available` defaults
    to `available_memory_bytes()`.
    """
    available = available_memory_bytes() if available is None else available
    needed = MEMORY_COPIES * dataset_bytes(num_images, image_size, channels)
    if available is not None and needed > available:
        height, width = image_size
        raise MemoryError(
            f"{source}: {num_images} images at {height}x{width}x{channels} need {needed / 2**30:.2f} GiB "
            f"({MEMORY_COPIES} x {num_images} x {height} x {width} x {channels} bytes: the uint8 images and the "
            f"episode pipeline's copy), but only {available / 2**30:.2f} GiB of memory is available. Use a "
            "smaller --image-size, --channels 1, or fewer classes.")


def fit_image(image, image_size, channels):
    """A uint8 image `[h, w, c]` as uint8 `[*image_size, channels]`.

    An alpha channel is dropped; RGB becomes grayscale by luminance
    (`tf.image.rgb_to_grayscale`) and grayscale RGB by repetition. The size
    changes by bilinear interpolation with antialiasing (an average over
    the source pixels when shrinking); an image already at `image_size`
    stays as it is.
    """
    image = tf.convert_to_tensor(image)
    if image.shape[-1] in (2, 4):
        image = image[..., :-1]
    if image.shape[-1] == 3 and channels == 1:
        image = tf.image.rgb_to_grayscale(image)
    elif image.shape[-1] == 1 and channels == 3:
        image = tf.image.grayscale_to_rgb(image)
    resized = tf.image.resize(image, image_size, method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def _decode(path):
    """The pixels of the image file at `path`, uint8 `[h, w, c]`: by TensorFlow (PNG, JPEG, GIF,
    BMP, WebP) or else by Pillow if it is installed (TIFF and the rest)."""
    try:
        return tf.io.decode_image(path.read_bytes(), expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
        pass
    try:
        from PIL import Image
    except ImportError:
        raise ValueError(f"cannot decode {path}: not an image TensorFlow reads (PNG, JPEG, GIF, BMP, WebP); "
                         "installing Pillow adds more formats") from None
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGBA" if "A" in image.getbands() else "RGB"))
    except Exception as error:  # Pillow raises many types for a bad file
        raise ValueError(f"cannot decode {path}: not an image TensorFlow or Pillow reads ({error})") from None


def load_image_folder(directory, image_size, channels=3, available_memory=None):
    """Reads a folder of class folders into memory as uint8 images.

    `directory/<class name>/<image file>`: every sub-folder is a class,
    every (non-hidden) file in it an image in any format TensorFlow or
    Pillow decodes. Images of any size and colour mode are resized to
    `image_size` with `channels` (see `fit_image`).

    Args:
        directory: the folder.
        image_size: `(height, width)` of the images in memory.
        channels: 1 (grayscale) or 3 (RGB).
        available_memory: bytes the data may take (default: what the
            system reports); checked before any image is read.

    Returns:
        A `LabelledData` of uint8 images `[N, height, width, channels]`, the
        class names the sub-folders' names.

    Raises:
        ValueError: no such folder, fewer than two classes, an empty class
            or an image that does not decode, naming the path.
        MemoryError: the images would not fit in memory.

    Example:
        >>> data = load_image_folder("photos", image_size=(84, 84))
        >>> splits = split_classes(data, seed=0)
    """
    check_image_settings(image_size, channels)
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise ValueError(f"no image folder at {directory}")
    class_dirs = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise ValueError(f"{directory} holds {len(class_dirs)} class folder(s) "
                         f"{[p.name for p in class_dirs]}; few-shot episodes need at least two classes, one "
                         "sub-folder of images per class")
    files = [sorted(f for f in d.iterdir() if f.is_file() and not f.name.startswith(".")) for d in class_dirs]
    for class_dir, class_files in zip(class_dirs, files):
        if not class_files:
            raise ValueError(f"class folder {class_dir} holds no image file")
    num_images = sum(map(len, files))
    check_fits_in_memory(directory, num_images, image_size, channels, available_memory)

    images = np.empty([num_images, *image_size, channels], np.uint8)
    labels = np.repeat(np.arange(len(class_dirs)), [len(f) for f in files])
    for row, path in enumerate(f for class_files in files for f in class_files):
        images[row] = fit_image(_decode(path), image_size, channels).numpy()
    return LabelledData(images, labels, [d.name for d in class_dirs])


def tfds_builder(name, data_dir):
    """The TFDS builder of `name` ("NAME[/CONFIG][:VERSION]"), or a `ValueError` naming it."""
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        close = difflib.get_close_matches(name.split("/")[0], tfds.list_builders(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else " (tfds.list_builders() lists them)"
        raise ValueError(f"no TFDS dataset named {name.split('/')[0]!r} (from {name!r}){hint}") from None
    except ValueError as error:  # an unknown config or version
        raise ValueError(f"TFDS cannot build {name!r}: {str(error).splitlines()[0]}") from None


def load_tfds_images(name, image_size, channels=3, data_dir=None, image_key="image", label_key="label",
                     available_memory=None):
    """Reads every split of a TFDS image dataset into memory as uint8 images, by class.

    Few-shot splits are by class, so TFDS's own splits (e.g. CIFAR-100's
    train and test) are merged: each class keeps all its images. The dataset
    is downloaded and prepared first if it is not in `data_dir` yet.

    Args:
        name: `"NAME"` or `"NAME/CONFIG"` (and optionally `":VERSION"`), e.g.
            `"cifar100"`, `"caltech_birds2011"`.
        image_size, channels: as `load_image_folder`.
        data_dir: TFDS's data directory (default: TFDS's, ~/tensorflow_datasets).
        image_key, label_key: the features holding the image and the class.
        available_memory: as `load_image_folder`; checked before reading.

    Returns:
        A `LabelledData`; class names are TFDS's label names.

    Example:
        >>> data = load_tfds_images("cifar100", image_size=(32, 32))
        >>> splits = apply_class_split(data, read_class_split("cifar-fs"))
    """
    check_image_settings(image_size, channels)
    builder = tfds_builder(name, data_dir)
    features = builder.info.features
    for role, key in (("image_key", image_key), ("label_key", label_key)):
        if key not in features:
            raise ValueError(f"TFDS dataset {name!r} has no feature {key!r} ({role}); its features: "
                             f"{sorted(features)}")
    if not hasattr(features[label_key], "names"):
        raise ValueError(f"feature {label_key!r} of TFDS dataset {name!r} is not a class label "
                         f"(a tfds.features.ClassLabel); received {type(features[label_key]).__name__}")
    builder.download_and_prepare()
    dataset = builder.as_dataset(split="all")
    num_images = int(dataset.cardinality())  # known from the prepared files, before reading them
    if num_images >= 0:
        check_fits_in_memory(f"tfds:{name}", num_images, image_size, channels, available_memory)

    dataset = dataset.map(
        lambda example: (fit_image(example[image_key], image_size, channels), example[label_key]),
        num_parallel_calls=tf.data.AUTOTUNE)
    batches, labels = [], []
    for image_batch, label_batch in dataset.batch(1024).prefetch(2).as_numpy_iterator():
        batches.append(image_batch)
        labels.append(label_batch)
    images = np.concatenate(batches)
    del batches  # so that the peak stays at MEMORY_COPIES arrays while LabelledData orders them by class
    labels = np.concatenate(labels)
    names = features[label_key].names
    present = np.unique(labels)  # a class without images (e.g. in a small mock dataset) is left out
    return LabelledData(images, np.searchsorted(present, labels), [names[c] for c in present])


def load_images(source, image_size, channels=3, data_dir=None, available_memory=None):
    """`load_image_folder` for `"images:DIR"`, `load_tfds_images` for `"tfds:NAME[/CONFIG]"`."""
    kind, _, location = str(source).partition(":")
    if kind == "images" and location:
        return load_image_folder(location, image_size, channels, available_memory)
    if kind == "tfds" and location:
        return load_tfds_images(location, image_size, channels, data_dir, available_memory=available_memory)
    raise ValueError(f"an image dataset is images:DIR (a folder of class folders) or tfds:NAME[/CONFIG]; "
                     f"received {source!r}")


def split_classes(data, fractions=DEFAULT_FRACTIONS, seed=0):
    """Splits `data` by class into train, validation and test parts of the given class fractions.

    The classes are shuffled by `seed` and then cut: the validation and test
    parts get `round(fraction * classes)` classes each (at least one), the
    training part the rest.

    Returns:
        `{"train": LabelledData, "validation": ..., "test": ...}`.
    """
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"`fractions` must be three positive class fractions (train, validation, test) "
                         f"summing to 1; received fractions={fractions!r}.")
    if data.num_classes < 3:
        raise ValueError(f"a train/validation/test split by class needs at least 3 classes; the data has "
                         f"{data.num_classes}: {data.class_names}")
    order = np.random.default_rng(seed).permutation(data.num_classes)
    val = max(1, round(fractions[1] * data.num_classes))
    test = max(1, round(fractions[2] * data.num_classes))
    if val + test >= data.num_classes:
        val, test = 1, 1
    names = [data.class_names[c] for c in order]
    parts = {"train": names[val + test:], "validation": names[:val], "test": names[val:val + test]}
    return {part: data.select_classes(sorted(parts[part])) for part in SPLIT_PARTS}


def read_class_split(path_or_name):
    """Reads a class-split file, or a shipped benchmark split by name (`BENCHMARK_SPLITS`).

    A class-split file is JSON with the class names of each part:
    `{"train": [...], "validation": [...], "test": [...]}`, and optionally
    `"label_names"`, the dataset's class names in label order, for copies of
    a TFDS dataset whose metadata names classes by bare label numbers.

    Returns:
        The parsed dict, the parts validated (lists of distinct names, no
        class in two parts).
    """
    if str(path_or_name) in BENCHMARK_SPLITS:
        text = (importlib.resources.files("tfmeta.data") / "splits" / BENCHMARK_SPLITS[path_or_name]).read_text()
        source = f"the {path_or_name} split"
    else:
        path = pathlib.Path(path_or_name)
        if not path.is_file():
            raise ValueError(f"no class-split file at {path} (a JSON file, or one of "
                             f"{sorted(BENCHMARK_SPLITS)})")
        text, source = path.read_text(), str(path)
    try:
        split = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{source} is not JSON: {error}") from None
    if not isinstance(split, dict) or not all(isinstance(split.get(p), list) and split[p] for p in SPLIT_PARTS):
        raise ValueError(f"{source} must be a JSON object with non-empty class lists {list(SPLIT_PARTS)}")
    seen = {}
    for part in SPLIT_PARTS:
        for name in map(str, split[part]):
            if name in seen:
                raise ValueError(f"{source}: class {name!r} is in {seen[name]!r} and {part!r}; the parts must "
                                 "not share classes")
            seen[name] = part
    return split


def apply_class_split(data, split):
    """`{"train": ..., "validation": ..., "test": ...}` of `data` by a class split (`read_class_split`)."""
    names = [str(n) for n in split.get("label_names", [])]
    if names and all(c.isdigit() and int(c) < len(names) for c in data.class_names):
        data = LabelledData(data.images, data.labels, [names[int(c)] for c in data.class_names])
    classes, parts = set(data.class_names), {}
    for part in SPLIT_PARTS:
        missing = [str(n) for n in split[part] if str(n) not in classes]
        if missing:
            raise ValueError(f"the class split's {part!r} part names {len(missing)} class(es) the dataset does not "
                             f"have, e.g. {missing[0]!r}; its classes are e.g. {data.class_names[:5]}")
        parts[part] = data.select_classes([str(n) for n in split[part]])
    return parts
