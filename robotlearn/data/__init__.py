"""Recording and loading demonstrations in the LeRobot v3 dataset layout."""

from robotlearn.data.dataset import SOURCES, DatasetError, DatasetMeta, load_meta
from robotlearn.data.loader import Demos, WindowDataset, load_demos, window_indices
from robotlearn.data.recorder import EpisodeRecorder, features_from_spaces

__all__ = ["SOURCES", "DatasetError", "DatasetMeta", "Demos", "EpisodeRecorder", "WindowDataset",
           "features_from_spaces", "load_demos", "load_meta", "window_indices"]
