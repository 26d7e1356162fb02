"""Fast training loader: whole dataset in memory as numpy arrays, videos decoded once and cached.

Training samples thousands of windows per second; decoding mp4 per step would dominate, so each episode's
video is decoded the first time and kept as a .npy next to the dataset (`.cache/`, keyed by the video's
size and mtime so a re-recorded episode is decoded again). Windows are index arithmetic on the flat arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robotlearn.data.dataset import DatasetMeta, load_meta


def decode_video(path: Path) -> np.ndarray:
    """All frames of an mp4 as uint8 (T,H,W,3)."""
    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        return np.stack([np.asarray(f, dtype=np.uint8) for f in reader])
    finally:
        reader.close()


def cached_frames(meta: DatasetMeta, video_key: str, episode_index: int) -> np.ndarray:
    video = meta.video_file(video_key, episode_index)
    st = video.stat()
    cache = meta.root / ".cache" / video_key / f"ep{episode_index:06d}-{st.st_size}-{st.st_mtime_ns}.npy"
    if cache.exists():
        return np.load(cache, mmap_mode="r")
    frames = decode_video(video)
    cache.parent.mkdir(parents=True, exist_ok=True)
    for old in cache.parent.glob(f"ep{episode_index:06d}-*.npy"):
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


def load_demos(root: str | Path, keys: list[str] | None = None, episodes: list[int] | None = None) -> Demos:
    """Load features `keys` (default: all non-video features and all videos) for `episodes` (default: all)."""
    meta = load_meta(root)
    if not meta.episodes:
        raise ValueError(f"{meta.root}: dataset has no episodes")
    wanted = keys or list(meta.features)
    for k in wanted:
        if k not in meta.features:
            raise KeyError(f"{meta.root}: no feature {k!r}; features: {', '.join(meta.features)}")
    eps = episodes if episodes is not None else list(range(len(meta.episodes)))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in wanted}
    lengths = []
    for e in eps:
        n = int(meta.episodes[e]["length"])
        lengths.append(n)
        cols = [k for k in wanted if meta.features[k]["dtype"] != "video"]
        table = pq.read_table(meta.data_file(e), columns=cols)
        for k in cols:
            col = table.column(k).combine_chunks()
            if meta.features[k]["dtype"] == "string":
                parts[k].append(np.asarray(col.to_pylist(), dtype=object))
            elif pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type):
                parts[k].append(col.flatten().to_numpy().reshape(n, -1))
            elif k == "action" or k.startswith("observation."):
                parts[k].append(col.to_numpy(zero_copy_only=False).reshape(n, 1))  # shape-[1] vector feature
            else:
                parts[k].append(col.to_numpy(zero_copy_only=False))
        for k in wanted:
            if meta.features[k]["dtype"] == "video":
                frames = cached_frames(meta, k, e)
                if len(frames) < n:
                    raise ValueError(f"{meta.video_file(k, e)}: {len(frames)} frames, episode has {n}")
                parts[k].append(np.asarray(frames[:n]))
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
