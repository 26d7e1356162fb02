"""The one recorder: every demo, rollout, intervention and correction is written through `EpisodeRecorder`.

Frames are buffered in memory (low-dim) or streamed to ffmpeg (images, into a temporary segment per
camera) while an episode runs; nothing under the dataset's committed names changes until `save_episode`,
which stages every changed file and commits them together (robotlearn.data.commit). A crash therefore
loses at most the episode being recorded, whether episodes go one per file (`pack=False`, the cheapest
commit) or are packed many per file up to a size cap as LeRobot does (`pack=True`).
"""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robotlearn.data.commit import Commit
from robotlearn.data.dataset import (
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_PATH,
    DEFAULT_FEATURES,
    EPISODES_PATH,
    EXTENSION_KEY,
    EXTENSIONS,
    INFO_PATH,
    SOURCES,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_PATH,
    DatasetError,
    DatasetMeta,
    feature_stats,
    load_meta,
    next_file,
    obs_feature_key,
    read_parquet,
    tasks_table,
)
from robotlearn.data.integrity import file_entry
from robotlearn.data.video import concat_videos, open_writer

IMAGE_STATS_MAX_FRAMES = 64  # frames kept per episode and camera for image stats (stats need not see every frame)
# Tests only: "frame:<episode>:<frame>", "staged:<episode>" (commit staged, no journal yet) or
# "journaled:<episode>" (journal written, renames pending) makes the recorder SIGSTOP itself there.
STOP_ENV = "ROBOTLEARN_RECORDER_STOP_AT"


def features_from_spaces(observation_space: gym.spaces.Dict, action_space: gym.spaces.Box,
                         fps: float, extra: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """LeRobot feature descriptions for an env's spaces (every Box obs key, images as videos).

    `extra`: more per-step columns (e.g. RaC's intervention_id / subtask_id), given to `add_frame(extras=)`.
    """
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
    feats["clock"] = {"dtype": "float64", "shape": [1], "names": None}
    for key, feat in (extra or {}).items():
        if key in feats or key in DEFAULT_FEATURES or key.startswith("observation."):
            raise DatasetError(f"extra feature {key!r} clashes with a built-in feature")
        feats[key] = feat
    return {**feats, **DEFAULT_FEATURES}


def recipe_from_env(env: gym.Env) -> dict[str, Any]:
    """The smallest recipe an env can tell about itself (callers with a full EnvRecipe pass its to_dict())."""
    from robotlearn.backends import BACKENDS

    backend = env.unwrapped.backend
    path = f"{type(backend).__module__}:{type(backend).__name__}"
    return {"id": env.spec.id if env.spec is not None else None,
            "backend": next((name for (_, name), p in BACKENDS.items() if p == path), type(backend).__name__),
            "cameras": list(getattr(env.unwrapped, "cameras", ()))}


def _arrow_column(values: list[Any], feat: dict[str, Any]) -> pa.Array:
    """One feature's column as LeRobot stores it: scalars for shape [1], fixed-size lists otherwise."""
    dtype = feat["dtype"]
    if dtype == "string":
        return pa.array(values, pa.string())
    arr = np.asarray(values, dtype=np.dtype(dtype))
    if list(feat["shape"]) == [1]:
        return pa.array(arr.reshape(-1))
    width = int(np.prod(feat["shape"]))
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), width)


def _stop_point() -> tuple[str, int, int] | None:
    spec = os.environ.get(STOP_ENV)
    if not spec:
        return None
    point, *nums = spec.split(":")
    return point, int(nums[0]), int(nums[1]) if len(nums) > 1 else -1


class EpisodeRecorder:
    """Append episodes to a dataset root (created if missing, resumed if present with the same features).

    robot_type and env_recipe (a JSON-able dict, e.g. `EnvRecipe.to_dict()`) are stored in info.json;
    pack=True writes LeRobot's packing: episodes are appended to the latest data/video/index file until it
    would exceed `data_files_size_in_mb`/`video_files_size_in_mb`.
    """

    def __init__(self, root: str | Path, fps: float, features: dict[str, dict[str, Any]], robot_type: str = "",
                 env_recipe: dict[str, Any] | None = None, *, pack: bool = False,
                 data_files_size_in_mb: float = 100, video_files_size_in_mb: float = 200):
        self.root = Path(root)
        self.fps = float(fps)
        self.pack = pack
        recipe = env_recipe
        try:
            json.dumps(recipe)  # fail here, not at the first commit, when the recipe is not JSON-able
        except (TypeError, ValueError) as err:
            raise ValueError(f"env_recipe must be JSON-able (e.g. EnvRecipe.to_dict()): {err}") from None
        if (self.root / INFO_PATH).exists():
            meta = load_meta(self.root)
            older = {k: f for k, f in features.items() if k != "clock"}  # datasets recorded before `clock` existed
            if meta.features not in (features, older) or meta.fps != self.fps:
                raise DatasetError(f"{self.root}: existing dataset has different features/fps; use a new --out")
            for path in meta.leftovers:  # an episode that never reached its commit point
                path.unlink()
            meta.leftovers = []
            self.meta = meta
            if robot_type and not meta.info.get("robot_type"):
                meta.info["robot_type"] = robot_type
            if recipe is not None and not meta.env_recipe:
                meta.info.setdefault(EXTENSION_KEY, {})["env_recipe"] = recipe
        else:
            has_video = any(f["dtype"] == "video" for f in features.values())
            info = {"codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": 0,
                    "total_frames": 0, "total_tasks": 0, "chunks_size": CHUNKS_SIZE,
                    "data_files_size_in_mb": data_files_size_in_mb, "video_files_size_in_mb": video_files_size_in_mb,
                    "fps": self.fps, "splits": {}, "data_path": DATA_PATH,
                    "video_path": VIDEO_PATH if has_video else None, "features": features,
                    EXTENSION_KEY: {"env_recipe": recipe, "extensions": EXTENSIONS, "files": {}}}
            self.meta = DatasetMeta(self.root, info, [], [])
            commit = Commit(self.root)
            commit.stage_json(self.root / INFO_PATH, info)
            commit.apply()
        self._frames: list[dict[str, Any]] | None = None
        self._writers: dict[str, Any] = {}
        self._image_samples: dict[str, list[np.ndarray]] = {}
        self._task = ""
        self._stop_at = _stop_point()

    @classmethod
    def for_env(cls, root: str | Path, env: gym.Env, robot_type: str = "", env_recipe: dict[str, Any] | None = None,
                extra_features: dict[str, dict[str, Any]] | None = None, **kwargs: Any) -> EpisodeRecorder:
        """A recorder for `env`'s spaces; robot_type and the env recipe default to what the env says."""
        fps = float(env.metadata.get("render_fps") or 10.0)
        return cls(root, fps, features_from_spaces(env.observation_space, env.action_space, fps, extra_features),
                   robot_type or env.unwrapped.backend.spec.name,
                   env_recipe if env_recipe is not None else recipe_from_env(env), **kwargs)

    @property
    def num_episodes(self) -> int:
        return len(self.meta.episodes)

    @property
    def recording(self) -> bool:
        return self._frames is not None

    @property
    def episode_frames(self) -> int:
        """Frames of the episode being recorded so far (0 when none is)."""
        return len(self._frames or ())

    def segment_path(self, key: str) -> Path:
        """Where a camera's frames of the episode in progress are encoded (a temporary name: never committed)."""
        path = self.root / "videos" / key / "recording.tmp.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _maybe_stop(self, point: str, frame: int = -1) -> None:
        """Test hook: freeze this process (SIGSTOP) at a chosen point so a test can SIGKILL it exactly there."""
        if self._stop_at == (point, self.num_episodes, frame):
            os.kill(os.getpid(), signal.SIGSTOP)

    def start_episode(self, task: str = "") -> None:
        if self.recording:
            raise RuntimeError("an episode is already being recorded; save_episode() or discard_episode() first")
        self._frames, self._task = [], task
        self._image_samples = {k: [] for k in self.meta.video_keys}

    def _writer(self, key: str):
        if key not in self._writers:
            self._writers[key] = open_writer(self.segment_path(key), self.fps)
        return self._writers[key]

    def add_frame(self, obs: dict[str, np.ndarray], action: np.ndarray, reward: float = 0.0, done: bool = False,
                  success: bool = False, source: str = "human", timestamp: float | None = None,
                  extras: dict[str, Any] | None = None) -> None:
        """Record one step: the observation the action was chosen from, the action, and what followed.

        timestamp: the backend clock when `obs` was taken (the env's info["timestamp"]), stored as `clock`.
        extras: values of the dataset's extra per-step features (see `features_from_spaces(extra=)`).
        """
        if self._frames is None:
            raise RuntimeError("start_episode() before add_frame()")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        feats = self.meta.features
        frame: dict[str, Any] = {}
        for key, value in obs.items():
            fkey = obs_feature_key(key)
            if fkey not in feats:
                raise KeyError(f"observation key {key!r} is not a feature of {self.root}")
            if feats[fkey]["dtype"] == "video":
                img = np.asarray(value, dtype=np.uint8)
                if list(img.shape) != list(feats[fkey]["shape"]):
                    raise ValueError(f"observation {key!r} has shape {img.shape}, the dataset records {feats[fkey]['shape']}")
                self._writer(fkey).append_data(img)
                samples = self._image_samples[fkey]
                if len(self._frames) % 4 == 0 and len(samples) < IMAGE_STATS_MAX_FRAMES:
                    samples.append(img)
            else:
                frame[fkey] = np.asarray(value).reshape(-1)
        frame["action"] = np.asarray(action).reshape(-1)
        for key in [k for k in frame if k in feats]:
            if frame[key].size != int(np.prod(feats[key]["shape"])):
                raise ValueError(f"{key} has {frame[key].size} values, the dataset records shape {feats[key]['shape']}")
        missing = [k for k, f in feats.items() if k.startswith("observation.") and k not in frame and f["dtype"] != "video"]
        if missing:
            raise KeyError(f"observation lacks {missing[0]!r}, a feature of {self.root}")
        frame.update({"next.reward": float(reward), "next.done": bool(done), "next.success": bool(success),
                      "source": source, "clock": math.nan if timestamp is None else float(timestamp)})
        for key, value in (extras or {}).items():
            if key not in feats or key in frame or key in DEFAULT_FEATURES:
                raise KeyError(f"{key!r} is not an extra feature of {self.root}")
            frame[key] = value
        absent = [k for k in feats if k not in frame and k not in DEFAULT_FEATURES and feats[k]["dtype"] != "video"]
        if absent:
            raise KeyError(f"frame lacks {absent[0]!r}, a feature of {self.root} (pass it in extras=)")
        self._frames.append(frame)
        self._maybe_stop("frame", len(self._frames) - 1)

    def _close_writers(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()

    def discard_episode(self) -> None:
        self._close_writers()
        for key in self.meta.video_keys:
            self.segment_path(key).unlink(missing_ok=True)
        self._frames = None

    def _latest(self, prefix: str) -> tuple[int, int] | None:
        """(chunk, file) of the newest file in use for `prefix` ("data", "videos/<key>", "meta/episodes")."""
        if not self.meta.episodes:
            return None
        return max((r[f"{prefix}/chunk_index"], r[f"{prefix}/file_index"]) for r in self.meta.episodes)

    def _target(self, prefix: str, path_of, cap_mb: float, adding_bytes: float) -> tuple[int, int, bool]:
        """(chunk, file, append?) for this episode's content under `prefix`."""
        latest = self._latest(prefix)
        if latest is None:
            return 0, 0, False
        if self.pack and path_of(*latest).stat().st_size + adding_bytes < cap_mb * 2**20:
            return *latest, True
        return *next_file(*latest, int(self.meta.info.get("chunks_size", CHUNKS_SIZE))), False

    def _episode_table(self, frames: list[dict[str, Any]]) -> pa.Table:
        """The frames as columns; episode_index/index/task_index are placeholders numbered at commit."""
        n = len(frames)
        zeros = np.zeros(n, np.int64)
        computed = {"timestamp": np.arange(n, dtype=np.float32) / np.float32(self.fps), "frame_index": np.arange(n),
                    "episode_index": zeros, "index": zeros, "task_index": zeros}
        columns = {}
        for key, feat in self.meta.features.items():
            if feat["dtype"] == "video":
                continue
            values = computed[key] if key in computed else [f[key] for f in frames]
            columns[key] = _arrow_column(values, feat)
        return pa.table(columns)

    def _frame_stats(self, table: pa.Table) -> dict[str, dict[str, np.ndarray]]:
        stats = {}
        for key, feat in self.meta.features.items():
            if feat["dtype"] in ("video", "string", "bool") or key == "clock":
                continue
            col = table.column(key).combine_chunks()
            flat = col.flatten() if pa.types.is_fixed_size_list(col.type) else col
            stats[key] = feature_stats(flat.to_numpy(zero_copy_only=False).reshape(len(table), -1))
        for key, samples in self._image_samples.items():
            stats[key] = feature_stats(np.stack(samples))
        return stats

    def save_episode(self, loop_stats: dict[str, Any] | None = None, episode_info: dict[str, Any] | None = None) -> int:
        """Commit the current episode; returns its index. loop_stats: the backend's info["loop_stats"] at its end;
        episode_info: JSON-able facts about the episode (e.g. RaC's termination reason), in its index row."""
        frames = self._frames
        if frames is None or not frames:
            raise RuntimeError("no frames to save; call start_episode() and add_frame() first")
        self._close_writers()
        table = self._episode_table(frames)
        segments = {key: self.segment_path(key) for key in self.meta.video_keys}
        ep = self.commit_episode(table, self._task, segments, self._frame_stats(table),
                                 bool(frames[-1]["next.success"]), loop_stats, episode_info)
        self._frames = None
        return ep

    def commit_episode(self, table: pa.Table, task: str, segments: dict[str, Path],
                       stats: dict[str, dict[str, np.ndarray]], success: bool,
                       loop_stats: dict[str, Any] | None = None, episode_info: dict[str, Any] | None = None) -> int:
        """Commit one episode given as a frame table (every non-video feature) and one mp4 segment per camera
        (moved into the dataset). episode_index, index and task_index are (re)numbered here."""
        meta, info = self.meta, dict(self.meta.info)
        ep, n, start = self.num_episodes, len(table), meta.total_frames
        tasks = list(meta.tasks)
        commit = Commit(self.root)
        if task not in tasks:
            tasks.append(task)
            pq.write_table(tasks_table(tasks), commit.stage(self.root / TASKS_PATH))
        stats = dict(stats)
        for name, values in (("episode_index", np.full(n, ep)), ("index", np.arange(start, start + n)),
                             ("task_index", np.full(n, tasks.index(task)))):
            table = table.set_column(table.column_names.index(name), name, pa.array(values, pa.int64()))
            stats[name] = feature_stats(values.reshape(n, 1))

        latest = self._latest("data")
        per_frame = 0.0
        if latest is not None:  # LeRobot's estimate: the latest file's bytes per frame
            in_latest = sum(r["length"] for r in meta.episodes if (r["data/chunk_index"], r["data/file_index"]) == latest)
            per_frame = meta.data_path(*latest).stat().st_size / in_latest
        chunk, file, append = self._target("data", meta.data_path, info["data_files_size_in_mb"], per_frame * n)
        data_path = meta.data_path(chunk, file)
        packed = pa.concat_tables([read_parquet(data_path), table]) if append else table
        pq.write_table(packed, commit.stage(data_path), compression="snappy", write_page_checksum=True)
        row: dict[str, Any] = {"episode_index": ep, "tasks": [task], "length": n,
                               "data/chunk_index": chunk, "data/file_index": file,
                               "dataset_from_index": start, "dataset_to_index": start + n}
        for key in meta.video_keys:
            row.update(self._stage_video(commit, key, segments[key], n))
        row["success"] = bool(success)
        row["robotlearn/loop_stats"] = json.dumps(loop_stats) if loop_stats is not None else None
        row["robotlearn/episode"] = json.dumps(episode_info) if episode_info is not None else None
        for feat, s in stats.items():
            for name, value in s.items():
                row[f"stats/{feat}/{name}"] = np.asarray(value, dtype=np.float64).reshape(-1).tolist()
        self._stage_episode_row(commit, row)

        new_meta = DatasetMeta(self.root, info, meta.episodes + [row], tasks)
        commit.stage_json(self.root / STATS_PATH, new_meta.compute_stats())
        ext = dict(info.get(EXTENSION_KEY) or {})
        files = dict(ext.get("files") or {})
        for staged, final in commit.renames:
            files[str(final.relative_to(self.root))] = file_entry(staged)
        new_info = new_meta.refreshed_info()
        new_info[EXTENSION_KEY] = {**ext, "files": files}
        new_meta.info = new_info
        commit.stage_json(self.root / INFO_PATH, new_info)
        commit.apply(pause=self._maybe_stop)
        self.meta = new_meta
        return ep

    def _stage_video(self, commit: Commit, key: str, segment: Path, n: int) -> dict[str, Any]:
        """Move (or, packing, append) a camera's segment into its video file; returns the row's video columns."""
        if not segment.exists():
            raise RuntimeError(f"episode has no frames for camera {key}")
        meta = self.meta

        def path_of(c: int, f: int) -> Path:
            return meta.video_path(key, c, f)

        chunk, file, append = self._target(f"videos/{key}", path_of, meta.info["video_files_size_in_mb"],
                                           segment.stat().st_size)
        video_path, offset = path_of(chunk, file), 0.0
        if append:
            offset = max(r[f"videos/{key}/to_timestamp"] for r in meta.episodes
                         if (r[f"videos/{key}/chunk_index"], r[f"videos/{key}/file_index"]) == (chunk, file))
            concat_videos([video_path, segment], commit.stage(video_path))
            segment.unlink()
        else:
            os.replace(segment, commit.stage(video_path))
        return {f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                f"videos/{key}/from_timestamp": offset, f"videos/{key}/to_timestamp": offset + n / self.fps}

    def _stage_episode_row(self, commit: Commit, row: dict[str, Any]) -> None:
        """Write the episode's index row into meta/episodes (its own file, or appended to the latest when packing)."""
        def path_of(c: int, f: int) -> Path:
            return self.root / EPISODES_PATH.format(chunk_index=c, file_index=f)

        chunk, file, append = self._target("meta/episodes", path_of, self.meta.info["data_files_size_in_mb"], 4096)
        row.update({"meta/episodes/chunk_index": chunk, "meta/episodes/file_index": file})
        rows = [r for r in self.meta.episodes
                if (r["meta/episodes/chunk_index"], r["meta/episodes/file_index"]) == (chunk, file)] if append else []
        schema = pa.Table.from_pylist([row]).schema
        for name in ("robotlearn/loop_stats", "robotlearn/episode"):
            schema = schema.set(schema.get_field_index(name), pa.field(name, pa.string()))
        pq.write_table(pa.Table.from_pylist(rows + [row], schema=schema), commit.stage(path_of(chunk, file)),
                       write_page_checksum=True)

    def close(self) -> None:
        """Drop an unfinished episode (it was never committed) and release ffmpeg writers."""
        if self.recording:
            self.discard_episode()
