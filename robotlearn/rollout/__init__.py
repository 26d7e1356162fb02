"""The one episode runner and the env recipe (see runner.py and recipe.py)."""

from robotlearn.rollout.recipe import DictObs, EnvRecipe, checkpoint_recipe
from robotlearn.rollout.runner import ActionSource, EpisodeStats, Rollout, RolloutResult, Sink, Transition
from robotlearn.rollout.sinks import VIDEO_SIZE, CallbackSink, RecorderSink, VideoSink, parse_size
from robotlearn.rollout.sources import DeviceSource, InterventionSource, PolicySource, RandomSource

__all__ = ["VIDEO_SIZE", "ActionSource", "CallbackSink", "DeviceSource", "DictObs", "EnvRecipe", "EpisodeStats",
           "InterventionSource", "PolicySource", "RandomSource", "RecorderSink", "Rollout", "RolloutResult", "Sink",
           "Transition", "VideoSink", "checkpoint_recipe", "parse_size"]
