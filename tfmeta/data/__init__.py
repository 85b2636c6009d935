"""Few-shot data: labelled sources, episode streams, Omniglot, text."""

from tfmeta.data.episodes import check_episode_shape, episodes, evaluation_episodes, fitting_meta_batch_size
from tfmeta.data.labelled import LabelledData
from tfmeta.data.lake_runs import load_lake_runs
from tfmeta.data.omniglot import SPLITS as OMNIGLOT_SPLITS
from tfmeta.data.omniglot import load_omniglot
from tfmeta.data.sinusoid import sinusoid_tasks
from tfmeta.data.text import LabelledText, load_clinc_oos, read_labelled_lines, read_text_folders

__all__ = [
    "LabelledData",
    "LabelledText",
    "OMNIGLOT_SPLITS",
    "check_episode_shape",
    "episodes",
    "evaluation_episodes",
    "fitting_meta_batch_size",
    "load_clinc_oos",
    "load_lake_runs",
    "load_omniglot",
    "read_labelled_lines",
    "read_text_folders",
    "sinusoid_tasks",
]
