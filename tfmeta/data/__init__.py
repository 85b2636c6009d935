"""Few-shot data: labelled sources, episode streams, Omniglot."""

from tfmeta.data.episodes import check_episode_shape, episodes, evaluation_episodes, fitting_meta_batch_size
from tfmeta.data.labelled import LabelledData
from tfmeta.data.lake_runs import load_lake_runs
from tfmeta.data.omniglot import SPLITS as OMNIGLOT_SPLITS
from tfmeta.data.omniglot import load_omniglot
from tfmeta.data.sinusoid import sinusoid_tasks

__all__ = [
    "LabelledData",
    "OMNIGLOT_SPLITS",
    "check_episode_shape",
    "episodes",
    "evaluation_episodes",
    "fitting_meta_batch_size",
    "load_lake_runs",
    "load_omniglot",
    "sinusoid_tasks",
]
