"""Omniglot (Lake et al. 2015), from the official release or tensorflow-datasets."""

import functools
import os
import posixpath
import zipfile
import zlib

import numpy as np
import tensorflow as tf

from tfmeta.data import cache, locations
from tfmeta.data.labelled import LabelledData
from tfmeta.omniglot_names import (BACKGROUND, EVALUATION, LAKE_SPLITS, RESIZE_METHODS, ROTATIONS, SPLITS,
                                   VINYALS_SPLITS, vinyals_characters)

_TFDS_SPLIT = {BACKGROUND: "train", EVALUATION: "test"}


def load_omniglot(split, data_dir=None, image_size=28, rotations=True, tfds_data_dir=None, resize="area"):
    """Loads an Omniglot split as `LabelledData`, one class per character.

    Images are float32 `[image_size, image_size, 1]` with ink = 1.0 and
    background = 0.0, downsampled from 105x105 by area averaging. Class names
    are `"<Alphabet>/characterNN"`, with `"/rotDDD"` appended when
    `rotations` adds the 90/180/270 degree (counter-clockwise) rotations of
    every character as classes of their own.

    Args:
        split: `"background"` or `"evaluation"` (Lake's split: 964 and 659
            characters), or the Vinyals split `"vinyals-train"`,
            `"vinyals-val"`, `"vinyals-test"`, `"vinyals-trainval"` (1028,
            172, 423 and 1200 characters, from both parts of the release).
        data_dir: a directory holding the official release: the zips
            `images_background.zip` / `images_evaluation.zip` or the folders
            they extract to. If `None`, the release is searched for as
            `tfmeta.data.locations` describes (a clone of the repository
            ships it in `data/omniglot`), and, where it is not found, comes
            through tensorflow-datasets (`omniglot`), which downloads it once.
        image_size: side of the square output images.
        rotations: add the rotated characters as classes (x4 classes).
        tfds_data_dir: tensorflow-datasets' data directory, when
            `data_dir` is `None`.
        resize: how the 105x105 drawings are downsampled: `"area"`
            (averaging, what tfmeta's models are trained on), or, to test a
            model on what a client's own resizing gives, `"bilinear"`
            (`tf.image.resize`'s default), `"bilinear-antialias"` or
            `"bicubic-antialias"` (close to Pillow's `Image.resize`). A
            tuple of these downsamples each drawing by one of them, chosen
            at random (seeded, the same in every call): training on such a
            mixture teaches a model not to care which one a client uses.

    Decoding all 32,460 images takes 10-15 s on two cores; the decoded images
    of the release's zips are cached on disk (`tfmeta.data.cache`), so later
    processes read them back in well under a second.

    Reference:
        Lake, Salakhutdinov, Tenenbaum. Human-level concept learning through
        probabilistic program induction. Science, 2015.

    Example:
        >>> train = load_omniglot("vinyals-train")
        >>> train.num_classes
        4112
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown Omniglot split {split!r}; choose one of {list(SPLITS)}.")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"`image_size` must be a positive integer; received {image_size!r}.")
    methods = (resize,) if isinstance(resize, str) else tuple(resize)
    if not methods or any(method not in RESIZE_METHODS for method in methods):
        raise ValueError(f"`resize` must be one of {list(RESIZE_METHODS)} or a tuple of them; received {resize!r}.")
    data_dir = locations.find_omniglot_dir(data_dir)
    if data_dir is not None:
        if not os.path.isdir(data_dir):
            raise FileNotFoundError(f"Omniglot data_dir {data_dir!r} is not a directory.")

    def read_resized(part, method):
        if data_dir is None:
            return _read_tfds(part, image_size, tfds_data_dir, method)
        return _read_release(data_dir, part, image_size, method)

    def read(part):
        views = [read_resized(part, method) for method in methods]
        images, characters = views[0]
        if len(views) > 1:
            choice = np.random.default_rng(len(images)).integers(len(views), size=len(images))
            images = np.stack([view for view, _ in views])[choice, np.arange(len(images))]
        return images, characters

    if split in LAKE_SPLITS:
        return _with_rotations(*read(LAKE_SPLITS[split]), rotations)

    parts = [read(part) for part in (BACKGROUND, EVALUATION)]
    data = _with_rotations(
        np.concatenate([images for images, _ in parts]),
        np.concatenate([characters for _, characters in parts]),
        rotations,
    )
    suffixes = [f"/rot{r:03d}" for r in ROTATIONS] if rotations else [""]
    wanted = [name for part in VINYALS_SPLITS[split] for name in vinyals_characters(part)]
    return data.select_classes([name + suffix for name in wanted for suffix in suffixes])


def _alphabets():
    """The 50 alphabets in sorted order, which is how tensorflow-datasets numbers them.

    Taken from the package's own class lists rather than TFDS's metadata, so
    class names equal the official release's whatever TFDS recorded.
    """
    characters = [name for part in ("train", "val", "test") for name in vinyals_characters(part)]
    return sorted({name.split("/")[0] for name in characters})


def _with_rotations(images, characters, rotations):
    """Builds LabelledData from images `[n, s, s, 1]` and per-image character names."""
    names, labels = np.unique(characters, return_inverse=True)
    labels = labels.reshape(-1)
    if not rotations:
        return LabelledData(images, labels, list(names))
    rotated = [np.rot90(images, k=r // 90, axes=(1, 2)) for r in ROTATIONS]
    class_names = [f"{name}/rot{r:03d}" for name in names for r in ROTATIONS]
    rotated_labels = [labels * len(ROTATIONS) + k for k in range(len(ROTATIONS))]
    return LabelledData(np.concatenate(rotated), np.concatenate(rotated_labels), class_names)


def _to_ink_images(images, image_size, resize="area"):
    """uint8 images `[n, 105, 105, c]` (black ink on white) -> float32 ink = 1, in [0, 1]."""
    ink = 1.0 - tf.cast(images[..., :1], tf.float32) / 255.0
    if ink.shape[1] == image_size and ink.shape[2] == image_size:
        return ink
    # Bicubic overshoots a little at stroke edges; a client clips to the served range.
    return tf.clip_by_value(tf.image.resize(ink, (image_size, image_size), **RESIZE_METHODS[resize]), 0.0, 1.0)


@functools.lru_cache(maxsize=8)
def _read_release(data_dir, part, image_size, resize="area"):
    """Reads one part of the official release (zip or extracted folder).

    Returns images `[n, s, s, 1]` and each image's character name, sorted by
    file path. A zip's decoded images are kept in `tfmeta.data.cache`.
    """
    folder = os.path.join(data_dir, part)
    archive = folder + ".zip"
    if os.path.isdir(folder):
        return _decode(folder, _read_folder(folder), part, image_size, resize)
    if os.path.isfile(archive):
        key = (part, image_size, resize, cache.file_digest(archive), tf.__version__)
        return cache.cached_arrays(f"omniglot-{part}-{image_size}-{resize}", key,
                                   lambda: _decode(archive, _read_zip(archive, part), part, image_size, resize))
    raise FileNotFoundError(
        f"Omniglot data_dir {data_dir!r} holds neither {part}.zip nor a {part}/ folder; "
        "it should hold the official release's zips or their extracted folders."
    )


def _decode(where, files, part, image_size, resize):
    """`[((alphabet, character, file name), PNG bytes)]` read from `where` -> images and character names."""
    if not files:
        raise ValueError(f"{where!r} holds no images of the form {part}/<alphabet>/<character>/*.png.")
    files.sort()
    characters = np.array([f"{alphabet}/{character}" for (alphabet, character, _), _ in files])
    pngs = tf.data.Dataset.from_tensor_slices([data for _, data in files])
    decoded = pngs.map(
        lambda png: tf.io.decode_png(png, channels=1), num_parallel_calls=tf.data.AUTOTUNE
    ).batch(4096)
    try:
        images = np.concatenate([_to_ink_images(b, image_size, resize).numpy() for b in decoded])
    except tf.errors.InvalidArgumentError as error:
        raise ValueError(f"{where!r} holds an image that is not a valid PNG: {error.message}") from None
    return images, characters


def _read_folder(folder):
    files = []
    for root, _, names in os.walk(folder):
        relative = os.path.relpath(root, folder).split(os.sep)
        for name in names:
            if name.endswith(".png") and len(relative) == 2:
                with open(os.path.join(root, name), "rb") as f:
                    files.append(((relative[0], relative[1], name), f.read()))
    return files


def _read_zip(archive, part):
    """Reads the PNGs of a release zip without extracting it to disk.

    Members whose path would leave the archive's top folder (absolute paths,
    `..`) are refused outright rather than skipped: such a zip is not the
    official release and may be malicious.
    """
    try:
        with zipfile.ZipFile(archive) as zip_file:
            return [
                (tuple(pieces[1:]), zip_file.read(info))
                for info, pieces in _release_members(archive, zip_file, part)
            ]
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise ValueError(f"{archive!r} is not a valid zip file: {error}") from None


def _release_members(archive, zip_file, part):
    """Yields `(info, [part, alphabet, character, file])` for each image member."""
    for info in zip_file.infolist():
        name = info.filename.replace("\\", "/")
        normalised = posixpath.normpath(name)
        if name.startswith("/") or normalised.startswith("..") or ":" in name.split("/")[0]:
            raise ValueError(
                f"{archive!r} holds a member {info.filename!r} that would extract outside "
                "its target directory; refusing to read it."
            )
        pieces = normalised.split("/")
        if len(pieces) == 4 and pieces[0] == part and pieces[3].endswith(".png"):
            yield info, pieces


@functools.lru_cache(maxsize=8)
def _read_tfds(part, image_size, tfds_data_dir, resize="area"):
    """Reads one part of Omniglot through tensorflow-datasets."""
    import tensorflow_datasets as tfds

    if not tfds.builder("omniglot", data_dir=tfds_data_dir).is_prepared():
        locations.check_download_possible()
    try:
        dataset = tfds.load("omniglot", split=_TFDS_SPLIT[part], data_dir=tfds_data_dir)
    except OSError as error:  # requests' connection errors are OSErrors
        raise locations.OmniglotNotFoundError(locations.not_found_message(
            "official release", f"tensorflow-datasets failed to download it ({type(error).__name__}: {error})"
        )) from None
    alphabets = np.array(_alphabets())
    images, characters = [], []
    for batch in dataset.batch(4096):
        images.append(_to_ink_images(batch["image"], image_size, resize).numpy())
        character_ids = batch["alphabet_char_id"].numpy() + 1
        names = alphabets[batch["alphabet"].numpy()]
        characters += [f"{a}/character{c:02d}" for a, c in zip(names, character_ids)]
    return np.concatenate(images), np.array(characters)
