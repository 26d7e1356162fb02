"""The on-disk dataset format: LeRobot v3, read through its own episode index.

Layout under a dataset root (LeRobot's, see its `datasets/utils.py`)::

    meta/info.json                                   features, fps, counts, path templates
    meta/stats.json                                  per-feature min/max/mean/std/count
    meta/tasks.parquet                               task strings (pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet         one row per episode: length, tasks, its data file and
                                                     global row range, per camera its video file and time span
    data/chunk-000/file-000.parquet                  low-dim frames of one or many episodes
    videos/observation.images.<cam>/chunk-000/file-000.mp4   frames of one or many episodes, back to back

Which file holds an episode is always read from its row in meta/episodes (never computed from its
number): LeRobot packs many episodes per file, robotlearn's recorder writes one per file or packs too.
robotlearn's additions are extensions that LeRobot ignores: the `source` and `clock` columns, the
`success`/`robotlearn/loop_stats` episode columns, and `info.json["robotlearn"]` (env recipe, checksums,
the list of extensions). A dataset without a `source` column (e.g. written by LeRobot) reads as `demo`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
TASKS_PATH = "meta/tasks.parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
SOURCES = ("policy", "human", "rewind", "correction", "demo")
MISSING_SOURCE = "demo"  # label of frames from datasets that carry no `source` column
STAT_NAMES = ("min", "max", "mean", "std", "count")
EXTENSION_KEY = "robotlearn"  # info.json section LeRobot does not read

# Columns LeRobot adds to every dataset.
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}

# What robotlearn adds to LeRobot's format, written into info.json so that a reader of the files can know.
EXTENSIONS: dict[str, dict[str, str]] = {
    "frame_columns": {
        "source": f"who produced the action: one of {', '.join(SOURCES)}; absent means '{MISSING_SOURCE}'",
        "clock": "backend clock (s since reset) when the observation was taken: info['timestamp'] of the env; "
                 "NaN when the caller gave none. `timestamp` stays LeRobot's frame_index/fps (video sync)",
        "next.reward/next.done/next.success": "outcome of the step that followed the frame",
    },
    "episode_columns": {
        "success": "whether the episode's last frame was a success",
        "robotlearn/loop_stats": "JSON of the backend's info['loop_stats'] at the episode's end (null if none)",
        "robotlearn/episode": "JSON of facts the recorder's caller gave (RaC: termination reason; null if none)",
    },
    "info": {
        "env_recipe": "JSON recipe that rebuilds the env the data was recorded on",
        "files": "relative path -> {bytes, sha256} of every committed file (`robotlearn dataset verify`)",
    },
}


class DatasetError(ValueError):
    """A dataset on disk is missing, malformed or corrupted; the one-line message names the file and field."""


def obs_feature_key(obs_key: str) -> str:
    """Env observation key -> dataset feature key ("images/top" -> "observation.images.top")."""
    return "observation." + obs_key.replace("/", ".")


def next_file(chunk: int, file: int, chunks_size: int = CHUNKS_SIZE) -> tuple[int, int]:
    """The (chunk, file) after (chunk, file): files fill a chunk, then the next chunk starts (as LeRobot does)."""
    return (chunk + 1, 0) if file == chunks_size - 1 else (chunk, file + 1)


def feature_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Stats over axis 0 (frames); images (N,H,W,C) get per-channel stats shaped (C,1,1) in [0,1] like LeRobot."""
    if values.ndim == 4:
        x = values.astype(np.float64) / 255.0
        per = x.transpose(3, 0, 1, 2).reshape(x.shape[3], -1)
        shape = (x.shape[3], 1, 1)
        return {"min": per.min(1).reshape(shape), "max": per.max(1).reshape(shape),
                "mean": per.mean(1).reshape(shape), "std": per.std(1).reshape(shape),
                "count": np.array([len(values)])}
    x = values.astype(np.float64).reshape(len(values), -1)
    return {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0), "count": np.array([len(x)])}


def aggregate_stats(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Combine per-episode stats exactly (pooled mean and variance weighted by counts)."""
    counts = np.array([float(p["count"][0]) for p in parts])
    w = counts / counts.sum()
    mean = sum(wi * p["mean"] for wi, p in zip(w, parts, strict=True))
    second = sum(wi * (p["std"] ** 2 + p["mean"] ** 2) for wi, p in zip(w, parts, strict=True))
    return {"min": np.min([p["min"] for p in parts], axis=0), "max": np.max([p["max"] for p in parts], axis=0),
            "mean": mean, "std": np.sqrt(np.maximum(second - mean**2, 0.0)), "count": np.array([int(counts.sum())])}


def validate_info(info: Any, path: Path) -> None:
    """The fields robotlearn relies on exist and have the right kind; errors name the field."""
    if not isinstance(info, dict):
        raise DatasetError(f"{path}: expected a JSON object, got {type(info).__name__}")
    if info.get("codebase_version") != CODEBASE_VERSION:
        raise DatasetError(f"{path}: field codebase_version is {info.get('codebase_version')!r}, expected {CODEBASE_VERSION}")
    fps = info.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not fps > 0:
        raise DatasetError(f"{path}: field fps must be a positive number, got {fps!r}")
    feats = info.get("features")
    if not isinstance(feats, dict) or not feats:
        raise DatasetError(f"{path}: field features must be a non-empty object, got {type(feats).__name__}")
    for key, feat in feats.items():
        if not isinstance(feat, dict) or not isinstance(feat.get("dtype"), str):
            raise DatasetError(f"{path}: field features.{key}.dtype is missing")
        shape = feat.get("shape")
        if not isinstance(shape, list | tuple) or not shape or not all(
                isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise DatasetError(f"{path}: field features.{key}.shape must be a list of positive integers, got {shape!r}")
    for name in ("data_path",) + (("video_path",) if any(f["dtype"] == "video" for f in feats.values()) else ()):
        if not isinstance(info.get(name), str):
            raise DatasetError(f"{path}: field {name} is missing")
    if not isinstance(info.get(EXTENSION_KEY, {}), dict):
        raise DatasetError(f"{path}: field {EXTENSION_KEY} must be an object")


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Read a parquet file; robotlearn's files carry page CRCs, so flipped bytes raise here instead of loading.

    Read on the calling thread (`use_threads=False`): an episode file is a few row groups, so Arrow's pool
    gains nothing, and a read that leaves pool work behind can abort the process at interpreter exit
    ("terminate called without an active exception", apache/arrow#34314) -- a short-lived DDP rank that
    read its dataset is exactly such a process."""
    try:
        return pq.ParquetFile(path, page_checksum_verification=True).read(columns=columns, use_threads=False)
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing") from None
    except (OSError, pa.ArrowException) as err:
        raise DatasetError(f"{path}: unreadable parquet: {str(err).splitlines()[0]}") from None


def read_tasks(root: Path) -> list[str]:
    """Task strings by task_index; as LeRobot writes them (pandas, strings in the index) or as a `task` column."""
    path = root / TASKS_PATH
    if not path.exists():
        return []
    table = read_parquet(path)
    pandas_meta = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}"))
    index_cols = [c for c in pandas_meta.get("index_columns", []) if isinstance(c, str)]
    candidates = index_cols + ["task", "__index_level_0__"]
    name = next((c for c in candidates if c in table.column_names and pa.types.is_string(table.schema.field(c).type)), None)
    if name is None or "task_index" not in table.column_names:
        raise DatasetError(f"{path}: expected a task_index column and task strings (index or `task` column), "
                           f"found columns {table.column_names}")
    pairs = sorted(zip(table.column("task_index").to_pylist(), table.column(name).to_pylist(), strict=True))
    if [i for i, _ in pairs] != list(range(len(pairs))):
        raise DatasetError(f"{path}: task_index values are not 0..{len(pairs) - 1}")
    return [t for _, t in pairs]


def tasks_table(tasks: list[str]) -> pa.Table:
    """meta/tasks.parquet as LeRobot reads it with pandas: task strings as the index."""
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    schema_meta = {b"pandas": json.dumps({
        "index_columns": ["task"], "column_indexes": [], "pandas_version": "2.2.0", "creator": {"library": "pyarrow"},
        "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
                     "metadata": None},
                    {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
                     "metadata": None}],
        "attributes": {}}).encode()}
    return table.replace_schema_metadata(schema_meta)


EPISODE_COLUMNS = ("episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                   "dataset_to_index")


def read_episode_rows(root: Path, video_keys: list[str]) -> list[dict[str, Any]]:
    """All committed episode rows, sorted, checked to be 0..N-1 with contiguous global row ranges."""
    rows: list[dict[str, Any]] = []
    needed = list(EPISODE_COLUMNS) + [f"videos/{k}/{c}" for k in video_keys
                                      for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
    for path in sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        if ".tmp" in path.name:
            continue
        table = read_parquet(path)
        for col in needed:
            if col not in table.column_names:
                raise DatasetError(f"{path}: column {col} is missing")
        rows.extend(table.to_pylist())
    rows.sort(key=lambda r: r["episode_index"])
    end = 0
    for expected, row in enumerate(rows):
        if row["episode_index"] != expected:
            raise DatasetError(f"{root}/meta/episodes: episode {expected} is missing (found {row['episode_index']})")
        if row["dataset_from_index"] != end or row["dataset_to_index"] - row["dataset_from_index"] != row["length"]:
            raise DatasetError(f"{root}/meta/episodes: episode {expected} has dataset_from_index/dataset_to_index "
                               f"{row['dataset_from_index']}:{row['dataset_to_index']}, expected {end}:{end + row['length']}")
        end = row["dataset_to_index"]
    return rows


@dataclass
class DatasetMeta:
    """Metadata of a dataset root: info.json, the committed episode rows, tasks, and what the open checks found."""

    root: Path
    info: dict[str, Any]
    episodes: list[dict[str, Any]]
    tasks: list[str]
    leftovers: list[Path] = field(default_factory=list)  # temporary files of an uncommitted episode
    rows_in_file: dict[int, tuple[int, int]] = field(default_factory=dict)  # episode -> row slice of its data file

    @property
    def fps(self) -> float:
        return float(self.info["fps"])

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info["features"]

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] == "video"]

    @property
    def total_frames(self) -> int:
        return int(sum(e["length"] for e in self.episodes))

    @property
    def robot_type(self) -> str | None:
        return self.info.get("robot_type") or None

    @property
    def extension(self) -> dict[str, Any]:
        return self.info.get(EXTENSION_KEY) or {}

    @property
    def env_recipe(self) -> dict[str, Any] | None:
        """How to rebuild the env the data came from (older robotlearn datasets kept it in `robotlearn_env`)."""
        return self.extension.get("env_recipe") or self.info.get("robotlearn_env")

    @property
    def checksums(self) -> dict[str, dict[str, Any]] | None:
        """relative path -> {bytes, sha256}; None for datasets not written by robotlearn."""
        return self.extension.get("files")

    def data_path(self, chunk: int, file: int) -> Path:
        return self.root / self.info["data_path"].format(chunk_index=chunk, file_index=file)

    def video_path(self, key: str, chunk: int, file: int) -> Path:
        return self.root / self.info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)

    def data_file(self, episode_index: int) -> Path:
        row = self.episodes[episode_index]
        return self.data_path(row["data/chunk_index"], row["data/file_index"])

    def video_file(self, video_key: str, episode_index: int) -> Path:
        row = self.episodes[episode_index]
        return self.video_path(video_key, row[f"videos/{video_key}/chunk_index"], row[f"videos/{video_key}/file_index"])

    def video_frames(self, video_key: str, episode_index: int) -> tuple[int, int]:
        """[first, last) frame of the episode inside its video file, from its from_timestamp and length."""
        row = self.episodes[episode_index]
        first = int(round(row[f"videos/{video_key}/from_timestamp"] * self.fps))
        return first, first + int(row["length"])

    def episode_stats(self, episode: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
        out: dict[str, dict[str, np.ndarray]] = {}
        for col, value in episode.items():
            if col.startswith("stats/") and value is not None:
                _, feat, stat = col.rsplit("/", 2)
                out.setdefault(feat, {})[stat] = np.asarray(value, dtype=np.float64)
        for feat, s in out.items():
            if feat in self.features and self.features[feat]["dtype"] == "video":
                for k in ("min", "max", "mean", "std"):
                    if k in s:
                        s[k] = s[k].reshape(-1, 1, 1)
        return {f: s for f, s in out.items() if all(k in s for k in STAT_NAMES)}

    def compute_stats(self) -> dict[str, dict[str, list]]:
        per_feature: dict[str, list[dict[str, np.ndarray]]] = {}
        for ep in self.episodes:
            for feat, s in self.episode_stats(ep).items():
                per_feature.setdefault(feat, []).append(s)
        return {feat: {k: v.tolist() for k, v in aggregate_stats(parts).items()} for feat, parts in per_feature.items()}

    def refreshed_info(self) -> dict[str, Any]:
        """info.json with counters recomputed from the committed episodes."""
        info = dict(self.info)
        n = len(self.episodes)
        info.update(total_episodes=n, total_frames=self.total_frames, total_tasks=len(self.tasks),
                    splits={"train": f"0:{n}"})
        return info


def load_meta(root: str | Path, verify: str = "cheap") -> DatasetMeta:
    """Open a dataset root, checking it against its own metadata; raises a one-line DatasetError.

    verify="cheap" (the default, on every open): info.json fields; the episode index; every referenced file
    exists with its recorded size and a valid header; parquet schemas, row ranges and timestamps against
    info.json; video streams (fps, size, frame counts). verify="full" also hashes every file (sha256).
    A commit that reached its journal before a crash is finished first (see robotlearn.data.commit).
    """
    from robotlearn.data.commit import leftovers, roll_forward
    from robotlearn.data.integrity import check_dataset

    root = Path(root)
    info_path = root / INFO_PATH
    if not info_path.exists():
        raise DatasetError(f"{root}: not a dataset (no {INFO_PATH})")
    try:
        roll_forward(root)
    except OSError as err:
        raise DatasetError(f"{root}: cannot finish an interrupted commit: {err}") from None
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{info_path}: invalid JSON: {err}") from None
    validate_info(info, info_path)
    video_keys = [k for k, f in info["features"].items() if f["dtype"] == "video"]
    meta = DatasetMeta(root=root, info=info, episodes=read_episode_rows(root, video_keys), tasks=read_tasks(root),
                       leftovers=leftovers(root))
    for name, actual in (("total_episodes", len(meta.episodes)), ("total_frames", meta.total_frames)):
        if info.get(name, actual) != actual:  # e.g. an episode-index file deleted: never load fewer episodes silently
            raise DatasetError(f"{info_path}: field {name} says {info[name]}, meta/episodes lists {actual}")
    if verify != "none":
        check_dataset(meta, full=verify == "full")
    return meta
