"""The on-disk dataset format: the LeRobot v3 layout, with one data file per episode.

Layout under a dataset root::

    meta/info.json                                   features, fps, counts, path templates
    meta/stats.json                                  per-feature min/max/mean/std/count
    meta/tasks.parquet                               task string -> task_index
    meta/episodes/chunk-000/file-000.parquet         one row per episode (lengths, index ranges, file refs)
    data/chunk-000/file-000.parquet                  low-dim frames
    videos/observation.images.<cam>/chunk-000/file-000.mp4

LeRobot packs many episodes into one file; the format allows any episode->file mapping, and we choose one
file per episode so that an episode becomes visible with a single atomic rename of its metadata row file,
written after its data and videos. A crash therefore loses at most the episode being recorded, and the
counters in info.json/stats.json are recomputed from the episode files on the next open.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
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
SOURCES = ("policy", "human", "rewind", "correction")
STAT_NAMES = ("min", "max", "mean", "std", "count")

# Columns LeRobot adds to every dataset.
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}


class DatasetError(ValueError):
    """A dataset on disk is missing or malformed; the message names the file."""


def obs_feature_key(obs_key: str) -> str:
    """Env observation key -> dataset feature key ("images/top" -> "observation.images.top")."""
    return "observation." + obs_key.replace("/", ".")


def chunk_of(episode_index: int) -> tuple[int, int]:
    """(chunk_index, file_index) holding an episode: one file per episode, CHUNKS_SIZE files per chunk."""
    return divmod(episode_index, CHUNKS_SIZE)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write then rename, so readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def atomic_write_table(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


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
    total = counts.sum()
    w = counts / total
    mean = sum(wi * p["mean"] for wi, p in zip(w, parts, strict=True))
    second = sum(wi * (p["std"] ** 2 + p["mean"] ** 2) for wi, p in zip(w, parts, strict=True))
    return {"min": np.min([p["min"] for p in parts], axis=0), "max": np.max([p["max"] for p in parts], axis=0),
            "mean": mean, "std": np.sqrt(np.maximum(second - mean**2, 0.0)), "count": np.array([int(total)])}


@dataclass
class DatasetMeta:
    """Metadata of a dataset root: info.json plus the committed episode rows."""

    root: Path
    info: dict[str, Any]
    episodes: list[dict[str, Any]]
    tasks: list[str]

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

    def data_file(self, episode_index: int) -> Path:
        chunk, file = chunk_of(episode_index)
        return self.root / DATA_PATH.format(chunk_index=chunk, file_index=file)

    def video_file(self, video_key: str, episode_index: int) -> Path:
        chunk, file = chunk_of(episode_index)
        return self.root / VIDEO_PATH.format(video_key=video_key, chunk_index=chunk, file_index=file)

    def episode_stats(self, episode: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
        out: dict[str, dict[str, np.ndarray]] = {}
        for col, value in episode.items():
            if col.startswith("stats/"):
                _, feat, stat = col.rsplit("/", 2)
                out.setdefault(feat, {})[stat] = np.asarray(value, dtype=np.float64)
        for feat, s in out.items():
            if feat in self.features and self.features[feat]["dtype"] == "video":
                for k in ("min", "max", "mean", "std"):
                    s[k] = s[k].reshape(-1, 1, 1)
        return out

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


def read_episode_rows(root: Path) -> list[dict[str, Any]]:
    """All committed episode rows, sorted by episode_index (stray *.tmp files are ignored)."""
    rows: list[dict[str, Any]] = []
    for path in sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        rows.extend(pq.read_table(path).to_pylist())
    rows.sort(key=lambda r: r["episode_index"])
    for expected, row in enumerate(rows):
        if row["episode_index"] != expected:
            raise DatasetError(f"{root}: episode {expected} is missing from meta/episodes")
    return rows


def read_tasks(root: Path) -> list[str]:
    path = root / "meta" / "tasks.parquet"
    if not path.exists():
        return []
    table = pq.read_table(path).to_pydict()
    order = np.argsort(table["task_index"])
    return [table["task"][i] for i in order]


def write_tasks(root: Path, tasks: list[str]) -> None:
    """meta/tasks.parquet: LeRobot reads it with pandas, task strings as the index."""
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    schema_meta = {b"pandas": json.dumps({
        "index_columns": ["task"], "column_indexes": [], "pandas_version": "2.2.0", "creator": {"library": "pyarrow"},
        "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
                     "metadata": None},
                    {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
                     "metadata": None}],
        "attributes": {}}).encode()}
    atomic_write_table(root / "meta" / "tasks.parquet", table.replace_schema_metadata(schema_meta))


def load_meta(root: str | Path) -> DatasetMeta:
    """Read a dataset root's metadata; raises DatasetError with the path when it is not a dataset."""
    root = Path(root)
    info_path = root / "meta" / "info.json"
    if not info_path.exists():
        raise DatasetError(f"{root}: not a dataset (no meta/info.json)")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{info_path}: invalid JSON: {err}") from None
    if info.get("codebase_version") != CODEBASE_VERSION:
        raise DatasetError(f"{info_path}: codebase_version {info.get('codebase_version')!r}, expected {CODEBASE_VERSION}")
    return DatasetMeta(root=root, info=info, episodes=read_episode_rows(root), tasks=read_tasks(root))
