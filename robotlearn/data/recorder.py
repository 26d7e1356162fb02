"""The one recorder: every demo, rollout, intervention and correction is written through `EpisodeRecorder`.

Frames are buffered in memory (low-dim) or streamed to ffmpeg (images) while an episode runs; nothing under
the dataset's visible names changes until `save_episode`, which commits data, videos and finally the
episode's metadata row with atomic renames (see robotlearn.data.dataset for why one file per episode).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pyarrow as pa

from robotlearn.data.dataset import (
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_PATH,
    DEFAULT_FEATURES,
    EPISODES_PATH,
    SOURCES,
    VIDEO_PATH,
    DatasetError,
    DatasetMeta,
    atomic_write_json,
    atomic_write_table,
    chunk_of,
    feature_stats,
    load_meta,
    obs_feature_key,
    write_tasks,
)

IMAGE_STATS_MAX_FRAMES = 64  # frames kept per episode and camera for image stats (stats need not see every frame)


def features_from_spaces(observation_space: gym.spaces.Dict, action_space: gym.spaces.Box,
                         fps: float) -> dict[str, dict[str, Any]]:
    """LeRobot feature descriptions for an env's spaces (every Box obs key, images as videos)."""
    feats: dict[str, dict[str, Any]] = {}
    for key, space in observation_space.spaces.items():
        if not isinstance(space, gym.spaces.Box):
            raise DatasetError(f"observation {key!r}: only Box spaces can be recorded, got {type(space).__name__}")
        if key.startswith("images/"):
            h, w, c = space.shape
            feats[obs_feature_key(key)] = {
                "dtype": "video", "shape": [h, w, c], "names": ["height", "width", "channels"],
                "info": {"video.height": h, "video.width": w, "video.codec": "h264", "video.pix_fmt": "yuv420p",
                         "video.is_depth_map": False, "video.fps": fps, "video.channels": c, "has_audio": False}}
        else:
            feats[obs_feature_key(key)] = {"dtype": "float32", "shape": list(space.shape or (1,)), "names": None}
    feats["action"] = {"dtype": "float32", "shape": list(action_space.shape), "names": None}
    feats["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
    feats["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
    feats["next.success"] = {"dtype": "bool", "shape": [1], "names": None}
    feats["source"] = {"dtype": "string", "shape": [1], "names": list(SOURCES)}
    return {**feats, **DEFAULT_FEATURES}


class EpisodeRecorder:
    """Append episodes to a dataset root (created if missing, resumed if present with the same features)."""

    def __init__(self, root: str | Path, fps: float, features: dict[str, dict[str, Any]], robot_type: str = "",
                 env_record: dict[str, Any] | None = None):
        self.root = Path(root)
        self.fps = float(fps)
        info_path = self.root / "meta" / "info.json"
        if info_path.exists():
            meta = load_meta(self.root)
            if meta.features != features or meta.fps != self.fps:
                raise DatasetError(f"{self.root}: existing dataset has different features/fps; use a new --out")
            self.meta = meta
        else:
            info = {"codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": 0,
                    "total_frames": 0, "total_tasks": 0, "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": 100,
                    "video_files_size_in_mb": 500, "fps": self.fps, "splits": {}, "data_path": DATA_PATH,
                    "video_path": VIDEO_PATH if any(f["dtype"] == "video" for f in features.values()) else None,
                    "features": features}
            if env_record:
                info["robotlearn_env"] = env_record  # how to rebuild the env (train/eval), ignored by LeRobot
            atomic_write_json(info_path, info)
            self.meta = DatasetMeta(self.root, info, [], [])
        self._remove_uncommitted()
        self._sync_meta()
        self._frames: list[dict[str, Any]] | None = None
        self._writers: dict[str, Any] = {}
        self._image_samples: dict[str, list[np.ndarray]] = {}
        self._task = ""

    @classmethod
    def for_env(cls, root: str | Path, env: gym.Env, robot_type: str = "",
                env_record: dict[str, Any] | None = None) -> EpisodeRecorder:
        fps = float(env.metadata.get("render_fps") or 10.0)
        return cls(root, fps, features_from_spaces(env.observation_space, env.action_space, fps), robot_type,
                   env_record)

    @property
    def num_episodes(self) -> int:
        return len(self.meta.episodes)

    @property
    def recording(self) -> bool:
        return self._frames is not None

    def _remove_uncommitted(self) -> None:
        """Files of an episode whose metadata row never landed (a crash) are leftovers: delete them."""
        n = self.num_episodes
        for path in list(self.root.glob("data/chunk-*/file-*")) + list(self.root.glob("videos/*/chunk-*/file-*")):
            chunk = int(path.parent.name.split("-")[1])
            file = int(path.name.split(".")[0].split("-")[1])
            if chunk * CHUNKS_SIZE + file >= n or ".tmp" in path.name:
                path.unlink()
        for path in self.root.glob("meta/**/*.tmp"):
            path.unlink()

    def _sync_meta(self) -> None:
        """info.json/stats.json are derived from the episode rows; rewrite them so they match after a crash."""
        self.meta.info = self.meta.refreshed_info()
        atomic_write_json(self.root / "meta" / "info.json", self.meta.info)
        if self.meta.episodes:
            atomic_write_json(self.root / "meta" / "stats.json", self.meta.compute_stats())

    def start_episode(self, task: str = "") -> None:
        if self.recording:
            raise RuntimeError("an episode is already being recorded; save_episode() or discard_episode() first")
        self._frames, self._task = [], task
        self._image_samples = {k: [] for k in self.meta.video_keys}

    def _writer(self, key: str):
        if key not in self._writers:
            path = self.meta.video_file(key, self.num_episodes)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.stem + ".tmp.mp4")
            self._writers[key] = imageio.get_writer(tmp, format="FFMPEG", fps=self.fps, codec="libx264",
                                                    pixelformat="yuv420p", macro_block_size=1, quality=8,
                                                    ffmpeg_log_level="error")
        return self._writers[key]

    def add_frame(self, obs: dict[str, np.ndarray], action: np.ndarray, reward: float = 0.0, done: bool = False,
                  success: bool = False, source: str = "human") -> None:
        """Record one step: the observation the action was chosen from, the action, and what followed."""
        if self._frames is None:
            raise RuntimeError("start_episode() before add_frame()")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        frame: dict[str, Any] = {}
        for key, value in obs.items():
            fkey = obs_feature_key(key)
            if fkey not in self.meta.features:
                raise KeyError(f"observation key {key!r} is not a feature of {self.root}")
            if key.startswith("images/"):
                img = np.asarray(value, dtype=np.uint8)
                self._writer(fkey).append_data(img)
                samples = self._image_samples[fkey]
                if len(self._frames) % 4 == 0 and len(samples) < IMAGE_STATS_MAX_FRAMES:
                    samples.append(img)
            else:
                frame[fkey] = np.asarray(value, dtype=np.float32).reshape(-1)
        frame["action"] = np.asarray(action, dtype=np.float32).reshape(-1)
        frame.update({"next.reward": float(reward), "next.done": bool(done), "next.success": bool(success),
                      "source": source})
        self._frames.append(frame)

    def discard_episode(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()
        for key in self.meta.video_keys:
            path = self.meta.video_file(key, self.num_episodes)
            path.with_name(path.stem + ".tmp.mp4").unlink(missing_ok=True)
        self._frames = None

    def save_episode(self) -> int:
        """Commit the current episode; returns its index. The episode row is written last (the commit point)."""
        frames = self._frames
        if frames is None or not frames:
            raise RuntimeError("no frames to save; call start_episode() and add_frame() first")
        ep = self.num_episodes
        n = len(frames)
        start = self.meta.total_frames
        tasks = list(self.meta.tasks)
        if self._task not in tasks:
            tasks.append(self._task)
            write_tasks(self.root, tasks)
        task_index = tasks.index(self._task)

        columns: dict[str, pa.Array] = {}
        stats: dict[str, dict[str, np.ndarray]] = {}
        for key, feat in self.meta.features.items():
            if feat["dtype"] == "float32" and key not in DEFAULT_FEATURES and key != "next.reward":
                values = np.stack([f[key] for f in frames]).astype(np.float32)
                if values.shape[1] == 1:  # LeRobot stores shape-[1] features as scalar columns
                    columns[key] = pa.array(values[:, 0], pa.float32())
                else:
                    columns[key] = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
                stats[key] = feature_stats(values)
        scalars = {
            "next.reward": pa.array([f["next.reward"] for f in frames], pa.float32()),
            "next.done": pa.array([f["next.done"] for f in frames], pa.bool_()),
            "next.success": pa.array([f["next.success"] for f in frames], pa.bool_()),
            "source": pa.array([f["source"] for f in frames], pa.string()),
            "timestamp": pa.array(np.arange(n, dtype=np.float32) / np.float32(self.fps), pa.float32()),
            "frame_index": pa.array(np.arange(n), pa.int64()),
            "episode_index": pa.array(np.full(n, ep), pa.int64()),
            "index": pa.array(np.arange(start, start + n), pa.int64()),
            "task_index": pa.array(np.full(n, task_index), pa.int64()),
        }
        columns.update(scalars)
        for key in ("next.reward", "timestamp", "frame_index", "episode_index", "index", "task_index"):
            stats[key] = feature_stats(np.asarray(scalars[key]).reshape(n, 1))
        atomic_write_table(self.meta.data_file(ep), pa.table(columns))

        for key, writer in self._writers.items():
            writer.close()
            path = self.meta.video_file(key, ep)
            shutil.move(path.with_name(path.stem + ".tmp.mp4"), path)
            stats[key] = feature_stats(np.stack(self._image_samples[key]))
        self._writers.clear()

        chunk, file = chunk_of(ep)
        row: dict[str, Any] = {
            "episode_index": ep, "tasks": [self._task], "length": n,
            "data/chunk_index": chunk, "data/file_index": file,
            "dataset_from_index": start, "dataset_to_index": start + n,
            "success": bool(frames[-1]["next.success"]),
        }
        for key in self.meta.video_keys:
            row.update({f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                        f"videos/{key}/from_timestamp": 0.0, f"videos/{key}/to_timestamp": n / self.fps})
        row.update({"meta/episodes/chunk_index": chunk, "meta/episodes/file_index": file})
        for feat, s in stats.items():
            for name, value in s.items():
                row[f"stats/{feat}/{name}"] = np.asarray(value, dtype=np.float64).reshape(-1).tolist()
        atomic_write_table(self.root / EPISODES_PATH.format(chunk_index=chunk, file_index=file), pa.Table.from_pylist([row]))

        self.meta.episodes.append(row)
        self.meta.tasks = tasks
        self._frames = None
        self._sync_meta()
        return ep

    def close(self) -> None:
        """Drop an unfinished episode (it was never committed) and release ffmpeg writers."""
        if self.recording:
            self.discard_episode()
