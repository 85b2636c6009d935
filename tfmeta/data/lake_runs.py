"""Lake et al.'s original one-shot task: 20 runs of 20-way within-alphabet classification."""

import os
import re
import zipfile
import zlib

import numpy as np
import tensorflow as tf

from tfmeta.data import locations
from tfmeta.data.omniglot import _to_ink_images

RUNS, WAYS = 20, 20
ARCHIVE = "all_runs"


def _read_members(data_dir):
    """`{relative path: bytes}` of the runs, from `all_runs.zip` or an `all_runs/` folder."""
    folder = os.path.join(data_dir, ARCHIVE)
    if os.path.isdir(folder):
        members = {}
        for root, _, names in os.walk(folder):
            for name in names:
                with open(os.path.join(root, name), "rb") as f:
                    members[os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/")] = f.read()
        return members, folder
    archive = folder + ".zip"
    if not os.path.isfile(archive):
        raise FileNotFoundError(
            f"Omniglot data_dir {data_dir!r} holds neither {ARCHIVE}.zip nor an {ARCHIVE}/ folder: Lake's "
            "one-shot runs ship with the official release's repository, not with tensorflow-datasets."
        )
    try:
        with zipfile.ZipFile(archive) as zip_file:
            return {info.filename: zip_file.read(info) for info in zip_file.infolist()
                    if not info.is_dir()}, archive
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise ValueError(f"{archive!r} is not a valid zip file: {error}") from None


def load_lake_runs(data_dir=None, image_size=28, resize="area"):
    """The 20 one-shot runs of Lake et al. (2015) as one meta-batch of 20 episodes.

    In each run, 20 characters of one evaluation alphabet have one drawing
    each (the support set, labels 0..19 in file order) and 20 other drawings
    are to be classified among them (the queries, labelled by the run's
    `class_labels.txt`). Characters within one alphabet look alike, which
    makes this task much harder than random 20-way episodes. Images are
    processed as `load_omniglot` does (ink 1.0, area-downsampled).

    Args:
        data_dir: the directory with `all_runs.zip` (or its extracted
            `all_runs/` folder), next to the official release's zips. If
            `None`, searched for as `tfmeta.data.locations` describes
            (tensorflow-datasets does not have these runs).
        image_size: side of the square output images.
        resize: how the drawings are downsampled, as in `load_omniglot`.

    Returns:
        A dict of NumPy arrays: `support_x`, `query_x` float32
        `[20, 20, image_size, image_size, 1]`; `support_y`, `query_y` int32
        `[20, 20]`.

    Reference:
        Lake, Salakhutdinov, Tenenbaum. Human-level concept learning through
        probabilistic program induction. Science, 2015.
    """
    found = locations.find_omniglot_dir(data_dir, member=ARCHIVE)
    if found is None:
        raise locations.OmniglotNotFoundError(locations.not_found_message(
            f"{ARCHIVE}.zip", "tensorflow-datasets does not have Lake's runs"))
    members, where = _read_members(found)
    support_png, query_png, query_y = [], [], []
    for run in range(1, RUNS + 1):
        prefix = f"run{run:02d}/"
        labels_file = members.get(prefix + "class_labels.txt")
        if labels_file is None:
            raise ValueError(f"{where!r} lacks {prefix}class_labels.txt; it is not Lake's all_runs release.")
        support_png.append([members.get(f"{prefix}training/class{c:02d}.png") for c in range(1, WAYS + 1)])
        pairs = [line.split() for line in labels_file.decode().splitlines() if line.strip()]
        pattern = re.compile(rf"^{prefix}test/item(\d\d)\.png$|^{prefix}training/class(\d\d)\.png$")
        items = {}
        for pair in pairs:
            matches = [pattern.match(path) for path in pair]
            if len(pair) != 2 or not all(matches) or matches[0].group(1) is None or matches[1].group(2) is None:
                raise ValueError(f"{where!r}: unexpected line {' '.join(pair)!r} in {prefix}class_labels.txt")
            items[int(matches[0].group(1))] = int(matches[1].group(2)) - 1
        if sorted(items) != list(range(1, WAYS + 1)):
            raise ValueError(f"{where!r}: {prefix}class_labels.txt must label items 01..{WAYS}; received "
                             f"{sorted(items)}")
        query_png.append([members.get(f"{prefix}test/item{i:02d}.png") for i in range(1, WAYS + 1)])
        query_y.append([items[i] for i in range(1, WAYS + 1)])
    pngs = [png for run in support_png + query_png for png in run]
    if any(png is None for png in pngs):
        raise ValueError(f"{where!r} lacks some runNN/training/classMM.png or runNN/test/itemMM.png images.")
    try:
        images = np.stack([tf.io.decode_png(png, channels=1).numpy() for png in pngs])
    except tf.errors.InvalidArgumentError as error:
        raise ValueError(f"{where!r} holds an image that is not a valid PNG: {error.message}") from None
    images = _to_ink_images(images, image_size, resize).numpy().reshape([2, RUNS, WAYS, image_size, image_size, 1])
    return {
        "support_x": images[0],
        "support_y": np.tile(np.arange(WAYS, dtype=np.int32), [RUNS, 1]),
        "query_x": images[1],
        "query_y": np.array(query_y, dtype=np.int32),
    }
