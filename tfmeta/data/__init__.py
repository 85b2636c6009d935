"""Few-shot data: labelled sources, episode streams, Omniglot, images, text."""

from tfmeta.data.episodes import check_episode_shape, episodes, evaluation_episodes, fitting_meta_batch_size
from tfmeta.data.images import (apply_class_split, load_image_folder, load_images, load_tfds_images, read_class_split,
                                split_classes)
from tfmeta.data.labelled import LabelledData
from tfmeta.data.lake_runs import load_lake_runs
from tfmeta.data.omniglot import SPLITS as OMNIGLOT_SPLITS
from tfmeta.data.omniglot import load_omniglot
from tfmeta.data.sinusoid import sinusoid_tasks
from tfmeta.data.text import LabelledText, load_clinc_oos, read_labelled_lines, read_text_folders, read_text_splits

__all__ = [
    "LabelledData",
    "LabelledText",
    "OMNIGLOT_SPLITS",
    "apply_class_split",
    "check_episode_shape",
    "episodes",
    "evaluation_episodes",
    "fitting_meta_batch_size",
    "load_clinc_oos",
    "load_image_folder",
    "load_images",
    "load_lake_runs",
    "load_omniglot",
    "load_tfds_images",
    "read_class_split",
    "read_labelled_lines",
    "read_text_folders",
    "read_text_splits",
    "sinusoid_tasks",
    "split_classes",
]
