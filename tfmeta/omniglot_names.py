"""Omniglot's split names and sizes, resizing methods and data-directory help, importable without TensorFlow: the
`tfmeta` command lists and checks them before it loads TensorFlow."""

import importlib.resources

ENVIRONMENT_VARIABLE = "TFMETA_OMNIGLOT_DIR"
# The help of every --data-dir flag.
DATA_DIR_HELP = (f"the official Omniglot release (zips or folders); default: ${ENVIRONMENT_VARIABLE}, else "
                 "data/omniglot of the repository, else download through tensorflow-datasets")

BACKGROUND = "images_background"
EVALUATION = "images_evaluation"
# Lake's split is the two parts of the official release; the split of Vinyals
# et al. 2016 (as released with Snell et al. 2017) takes characters from both
# and ships with the package as class lists.
LAKE_SPLITS = {"background": BACKGROUND, "evaluation": EVALUATION}
VINYALS_SPLITS = {
    "vinyals-train": ("train",),
    "vinyals-val": ("val",),
    "vinyals-test": ("test",),
    "vinyals-trainval": ("train", "val"),
}
SPLITS = tuple(LAKE_SPLITS) + tuple(VINYALS_SPLITS)
ROTATIONS = (0, 90, 180, 270)  # every character is four classes: itself and its rotations
LAKE_RUNS = "lake-runs"  # Lake's 20 one-shot runs (all_runs.zip), as a test split
# How 105x105 drawings become image_size: tfmeta's own (area averaging), and
# what clients commonly use instead, to measure how much a model cares.
RESIZE_METHODS = {
    "area": {"method": "area"},
    "bilinear": {"method": "bilinear"},  # tf.image.resize's default: no antialiasing
    "bilinear-antialias": {"method": "bilinear", "antialias": True},
    "bicubic-antialias": {"method": "bicubic", "antialias": True},  # close to Pillow's Image.resize
}


def vinyals_characters(part):
    """The characters ("<Alphabet>/characterNN") of a part ("train", "val", "test") of the Vinyals split."""
    return (importlib.resources.files("tfmeta") / "data" / "splits" / f"vinyals_{part}.txt").read_text().split()


def vinyals_num_classes(split):
    """The classes of a Vinyals split (characters and their rotations), from its class list: no image read."""
    return len(ROTATIONS) * sum(len(vinyals_characters(part)) for part in VINYALS_SPLITS[split])
