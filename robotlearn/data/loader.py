"""Fast training loader: whole dataset in memory as numpy arrays, videos decoded once and cached.

Rows and frames are found through the episode index (meta/episodes: each episode's data file and row
range, each camera's video file and time span), so files holding one episode or many read the same.
Training samples thousands of windows per second; decoding mp4 per step would dominate, so each video
file is decoded the first time and kept as a .npy next to the dataset (`.cache/`, keyed by the file's
size and mtime so a rewritten file is decoded again). Windows are index arithmetic on the flat arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from robotlearn.data.dataset import MISSING_SOURCE, DatasetError, DatasetMeta, load_meta, read_parquet
from robotlearn.data.video import decode_video


def cached_frames(meta: DatasetMeta, video_key: str, video: Path) -> np.ndarray:
    """All frames of one video file, decoded once per (file, size, mtime)."""
    st = video.stat()
    tag = f"{video.parent.name}-{video.stem}"
    cache = meta.root / ".cache" / video_key / f"{tag}-{st.st_size}-{st.st_mtime_ns}.npy"
    if cache.exists():
        return np.load(cache, mmap_mode="r")
    frames = decode_video(video)
    cache.parent.mkdir(parents=True, exist_ok=True)
    for old in cache.parent.glob(f"{tag}-*.npy"):
        old.unlink()
    tmp = cache.with_name(cache.stem + ".tmp.npy")
    np.save(tmp, frames)
    tmp.replace(cache)
    return frames


@dataclass
class Demos:
    """A dataset flattened over frames: `data[key]` is (N, ...) and episode e spans ends[e-1]:ends[e]."""

    meta: DatasetMeta
    data: dict[str, np.ndarray]
    episode_ends: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.episode_ends[-1]) if len(self.episode_ends) else 0

    def episode(self, e: int) -> dict[str, np.ndarray]:
        lo = int(self.episode_ends[e - 1]) if e else 0
        return {k: v[lo:int(self.episode_ends[e])] for k, v in self.data.items()}


def column_values(col: pa.ChunkedArray, key: str, feat: dict[str, Any], n: int, path: Path) -> np.ndarray:
    """A parquet column as numpy: (n, *shape); shape-[1] non-vector columns stay (n,)."""
    if feat["dtype"] == "string":
        return np.asarray(col.to_pylist(), dtype=object)
    arr = col.combine_chunks()
    while pa.types.is_fixed_size_list(arr.type) or pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        arr = arr.flatten()
    values = arr.to_numpy(zero_copy_only=False)
    shape = [int(d) for d in feat["shape"]]
    if values.size != n * int(np.prod(shape)):
        raise DatasetError(f"{path}: column {key} holds {values.size // max(n, 1)} values per frame, "
                           f"meta/info.json field features.{key}.shape says {shape}")
    if shape == [1] and not (key == "action" or key.startswith("observation.")):
        return values.reshape(n)
    return values.reshape(n, *shape)


def load_demos(root: str | Path, keys: list[str] | None = None, episodes: list[int] | None = None) -> Demos:
    """Load features `keys` (default: all, videos decoded) for `episodes` (default: all).

    A dataset without robotlearn's `source` column (e.g. recorded by LeRobot) yields source "demo".
    """
    meta = load_meta(root)
    if not meta.episodes:
        raise ValueError(f"{meta.root}: dataset has no episodes")
    feats = meta.features
    wanted = list(keys) if keys else list(feats) + ([] if "source" in feats else ["source"])
    for k in wanted:
        if k not in feats and k != "source":
            raise KeyError(f"{meta.root}: no feature {k!r}; features: {', '.join(feats)}")
        if k in feats and feats[k]["dtype"] == "image":
            raise DatasetError(f"{meta.root}: feature {k} is stored as images in parquet, which robotlearn does not load")
    eps = episodes if episodes is not None else list(range(len(meta.episodes)))
    bad = [e for e in eps if not 0 <= e < len(meta.episodes)]
    if bad:
        raise ValueError(f"{meta.root}: episodes {bad} out of range; dataset has {len(meta.episodes)}")
    cols = [k for k in wanted if k in feats and feats[k]["dtype"] != "video"]
    tables: dict[Path, pa.Table] = {}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in wanted}
    lengths = []
    for e in eps:
        n = int(meta.episodes[e]["length"])
        lengths.append(n)
        path = meta.data_file(e)
        if path not in tables:
            tables[path] = read_parquet(path, cols)
        lo, hi = meta.rows_in_file[e]
        rows = tables[path].slice(lo, hi - lo)
        for k in cols:
            parts[k].append(column_values(rows.column(k), k, feats[k], n, path))
        if "source" in wanted and "source" not in feats:
            parts["source"].append(np.full(n, MISSING_SOURCE, dtype=object))
        for k in wanted:
            if k in feats and feats[k]["dtype"] == "video":
                video = meta.video_file(k, e)
                frames = cached_frames(meta, k, video)
                first, last = meta.video_frames(k, e)
                if last > len(frames):
                    raise DatasetError(f"{video}: {len(frames)} frames decoded, episode {e} needs {first}..{last - 1}")
                parts[k].append(np.asarray(frames[first:last]))
    data = {k: np.concatenate(v) for k, v in parts.items()}
    return Demos(meta=meta, data=data, episode_ends=np.cumsum(lengths))


def window_indices(episode_ends: np.ndarray, obs_horizon: int, pred_horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """For every frame t: observation frames t-To+1..t and action frames t-To+1..t-To+Tp, clamped to the episode.

    Clamping repeats the first observation before an episode starts and the last action after it ends, so
    every frame is a training sample and the policy learns to hold still at the end.
    """
    obs_idx, act_idx = [], []
    lo = 0
    for hi in episode_ends.astype(int):
        t = np.arange(lo, hi)[:, None]
        obs_idx.append(np.clip(t + np.arange(-obs_horizon + 1, 1), lo, hi - 1))
        act_idx.append(np.clip(t + np.arange(-obs_horizon + 1, -obs_horizon + 1 + pred_horizon), lo, hi - 1))
        lo = hi
    return np.concatenate(obs_idx), np.concatenate(act_idx)


class WindowDataset:
    """(obs window, action window) samples over in-memory arrays; images stay uint8 until batched.

    A map-style dataset (len + getitem, usable with torch's DataLoader); torch is imported only when
    batches are built so that recording and `dataset info` do not pay for it.
    """

    def __init__(self, demos: Demos, obs_keys: list[str], action_key: str, obs_horizon: int, pred_horizon: int):
        self.obs = {k: demos.data[k] for k in obs_keys}
        self.action = demos.data[action_key].astype(np.float32)
        self.obs_idx, self.act_idx = window_indices(demos.episode_ends, obs_horizon, pred_horizon)

    def __len__(self) -> int:
        return len(self.obs_idx)

    def batch(self, rows: np.ndarray) -> dict[str, Any]:
        """Gather many samples at once (much faster than per-item __getitem__ + collate)."""
        import torch

        out = {k: torch.from_numpy(np.ascontiguousarray(v[self.obs_idx[rows]])) for k, v in self.obs.items()}
        out["action"] = torch.from_numpy(self.action[self.act_idx[rows]])
        return out

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {k: v[0] for k, v in self.batch(np.array([i])).items()}
