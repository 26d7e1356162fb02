"""Sinks for `Rollout`: the dataset recorder, a video writer, a per-step callback."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from robotlearn.rollout.runner import EpisodeStats, Sink, Transition, kept

#: default size of videos people watch (a policy's 84x84 camera is unwatchable)
VIDEO_SIZE = (320, 240)


def parse_size(text: str) -> tuple[int, int]:
    """"320x240" -> (320, 240), or a one-line ValueError."""
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()) or int(width) == 0 or int(height) == 0:
        raise ValueError(f"a video size looks like 320x240, got {text!r}")
    return int(width), int(height)


class RecorderSink(Sink):
    """Writes episodes into a dataset (robotlearn.data.recorder.EpisodeRecorder) with per-step source
    labels, the backend's clock and the episode's loop stats. An episode is committed when `keep(stats)`
    says so (default: it ended on its own or an operator saved it), discarded otherwise, so a killed run
    loses at most the episode in progress."""

    def __init__(self, recorder: Any, task_text: str, keep: Callable[[EpisodeStats], bool] | None = None):
        self.recorder, self.task_text = recorder, task_text
        self.keep = keep or kept
        self.saved: list[int] = []
        self._clock = 0.0

    def start_episode(self, obs, info, seed) -> None:
        self.recorder.start_episode(task=self.task_text)
        self._clock = float(info.get("timestamp", 0.0))

    def add(self, tr: Transition) -> None:
        # a frame is the observation acted on: its clock is the one its step (or the reset) reported
        self.recorder.add_frame(tr.obs, tr.action, tr.reward, tr.done, bool(tr.info.get("is_success", False)),
                                tr.source, timestamp=self._clock)
        self._clock = float(tr.info.get("timestamp", np.nan))

    def end_episode(self, stats: EpisodeStats) -> None:
        if self.recorder.recording:
            if self.keep(stats):
                self.saved.append(self.recorder.save_episode(loop_stats=stats.loop_stats))
            else:
                self.recorder.discard_episode()

    def close(self) -> None:
        if self.recorder.recording:
            self.recorder.discard_episode()
        self.recorder.close()


class VideoSink(Sink):
    """Frames of the first `episodes` episodes from `camera` (default: the env's first camera) at `size`,
    written to `path` (mp4) on close."""

    def __init__(self, env, path: str | Path, camera: str | None = None, size: tuple[int, int] = VIDEO_SIZE,
                 episodes: int = 1):
        self.backend = env.unwrapped.backend
        cameras = [c.name for c in self.backend.spec.cameras]
        if not cameras:
            raise ValueError(f"no video: robot {self.backend.spec.name!r} has no camera")
        self.camera = camera or cameras[0]
        self.backend.spec.camera(self.camera)  # a clear error for an unknown camera
        self.path, self.size, self.episodes = Path(path), size, episodes
        self.fps = float(env.metadata.get("render_fps") or 10.0)
        self.frames: list[np.ndarray] = []
        self._seen = 0

    def _grab(self) -> None:
        if self._seen < self.episodes:
            self.frames.append(self.backend.render(self.camera, self.size))

    def start_episode(self, obs, info, seed) -> None:
        self._grab()

    def add(self, tr: Transition) -> None:
        self._grab()

    def end_episode(self, stats: EpisodeStats) -> None:
        self._seen += 1

    def close(self) -> None:
        import imageio.v2 as imageio

        if self.frames:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            imageio.mimsave(self.path, self.frames, fps=self.fps, macro_block_size=1)


class CallbackSink(Sink):
    """Calls `on_step(transition)` for every step (status lines, custom logging)."""

    def __init__(self, on_step: Callable[[Transition], None],
                 on_end: Callable[[EpisodeStats], None] | None = None):
        self.on_step, self.on_end = on_step, on_end

    def add(self, tr: Transition) -> None:
        self.on_step(tr)

    def end_episode(self, stats: EpisodeStats) -> None:
        if self.on_end is not None:
            self.on_end(stats)


def close_all(items: Iterable[Any]) -> None:
    """Close every item even if one fails (the first error is raised after all were tried)."""
    first: BaseException | None = None
    for item in items:
        try:
            item.close()
        except BaseException as err:  # noqa: BLE001 - keep closing the rest, re-raise the first
            first = first or err
    if first is not None:
        raise first
