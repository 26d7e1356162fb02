"""Writes datasets laid out exactly as LeRobot 0.4.4's writer does, with pyarrow and ffmpeg only.

lerobot itself is not installed in CI (it imports torchvision, which does not work with our torch), so
this follows its writer (`LeRobotDataset.create` + `add_frame` + `save_episode`, datasets/utils.py and
lerobot_dataset.py): several episodes per data file appended as row groups, shape-(n,) features as
fixed-size lists and shape-(1,) as scalars, no `source` column, `meta/tasks.parquet` written by pandas
with the task strings as its (unnamed) index, one episode-index file, and each camera's episodes encoded
separately (libsvtav1, gop 2, crf 30: LeRobot's defaults) then concatenated into one mp4, the later
episodes' from_timestamp being the duration before them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DEFAULT = {"timestamp": ("float32", [1]), "frame_index": ("int64", [1]), "episode_index": ("int64", [1]),
           "index": ("int64", [1]), "task_index": ("int64", [1])}
CAM = "observation.images.front"


def state_value(e: int, t: int, dim: int) -> np.ndarray:
    return (e * 100 + t + 0.01 * np.arange(dim)).astype(np.float32)


def frame_level(e: int, t: int) -> int:
    """Grey level of frame t of episode e (flat frames survive lossy coding within a few levels)."""
    return (60 * e + 6 * t) % 250


def _encode(frames: np.ndarray, fps: int, out: Path) -> None:
    h, w = frames.shape[1:3]
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", "-c:v", "libsvtav1", "-pix_fmt", "yuv420p", "-g", "2",
           "-crf", "30", "-svtav1-params", "log-level=0", str(out)]
    subprocess.run(cmd, input=frames.tobytes(), check=True, capture_output=True)


def _concat(parts: list[Path], out: Path) -> None:
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{p.resolve()}'\n" for p in parts))
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "concat", "-safe", "0",
                    "-i", str(listing), "-c", "copy", str(out)], check=True, capture_output=True)
    listing.unlink()


def _hf_type(dtype: str, shape: list[int]) -> dict:
    value = {"dtype": dtype, "_type": "Value"}
    return value if shape == [1] else {"feature": value, "length": shape[0], "_type": "Sequence"}


def write_lerobot_dataset(root: Path, lengths: tuple[int, ...] = (30, 25, 20, 15), data_files=((0, 1), (2,), (3,)),
                          video_files=((0, 1), (2, 3)), camera: tuple[int, int] | None = (48, 64), dim: int = 6,
                          fps: int = 30, chunks_size: int = 2, tasks=("pick the cube", "place the cube"),
                          video_fps: int | None = None) -> Path:
    """Episode e has len lengths[e] and task tasks[e % len(tasks)]; data_files/video_files group episodes into
    files, numbered (chunk, file) in order with `chunks_size` files per chunk (so later files land in chunk-001)."""
    features = {"observation.state": {"dtype": "float32", "shape": [dim], "names": [f"j{i}" for i in range(dim)]},
                "action": {"dtype": "float32", "shape": [dim], "names": [f"j{i}" for i in range(dim)]}}
    if camera:
        h, w = camera
        features[CAM] = {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
                         "info": {"video.height": h, "video.width": w, "video.codec": "av1", "video.pix_fmt": "yuv420p",
                                  "video.is_depth_map": False, "video.fps": fps, "video.channels": 3, "has_audio": False}}
    for k, (dt, sh) in DEFAULT.items():
        features[k] = {"dtype": dt, "shape": sh, "names": None}
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
    rows = [{"episode_index": e, "tasks": [tasks[e % len(tasks)]], "length": n} for e, n in enumerate(lengths)]

    def file_of(i: int) -> tuple[int, int]:
        return divmod(i, chunks_size)

    hf_meta = {b"huggingface": json.dumps({"info": {"features": {
        k: _hf_type(f["dtype"], f["shape"]) for k, f in features.items() if f["dtype"] != "video"}}}).encode()}
    for i, eps in enumerate(data_files):
        chunk, file = file_of(i)
        path = root / f"data/chunk-{chunk:03d}/file-{file:03d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = None
        for e in eps:
            n = lengths[e]
            state = np.stack([state_value(e, t, dim) for t in range(n)])
            cols = {"observation.state": pa.FixedSizeListArray.from_arrays(pa.array(state.reshape(-1)), dim),
                    "action": pa.FixedSizeListArray.from_arrays(pa.array(-state.reshape(-1)), dim),
                    "timestamp": pa.array(np.arange(n, dtype=np.float32) / np.float32(fps)),
                    "frame_index": pa.array(np.arange(n, dtype=np.int64)),
                    "episode_index": pa.array(np.full(n, e, np.int64)),
                    "index": pa.array(np.arange(starts[e], starts[e + 1], dtype=np.int64)),
                    "task_index": pa.array(np.full(n, e % len(tasks), np.int64))}
            table = pa.table(cols).replace_schema_metadata(hf_meta)
            writer = writer or pq.ParquetWriter(path, table.schema, compression="snappy", use_dictionary=True)
            writer.write_table(table)
            rows[e].update({"data/chunk_index": chunk, "data/file_index": file,
                            "dataset_from_index": int(starts[e]), "dataset_to_index": int(starts[e + 1])})
        writer.close()
    if camera:
        for i, eps in enumerate(video_files):
            chunk, file = file_of(i)
            path = root / f"videos/{CAM}/chunk-{chunk:03d}/file-{file:03d}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            parts, offset = [], 0.0
            for e in eps:
                frames = np.stack([np.full((*camera, 3), frame_level(e, t), np.uint8) for t in range(lengths[e])])
                part = path.with_name(f"ep{e}.mp4")
                _encode(frames, video_fps or fps, part)
                parts.append(part)
                rows[e].update({f"videos/{CAM}/chunk_index": chunk, f"videos/{CAM}/file_index": file,
                                f"videos/{CAM}/from_timestamp": offset,
                                f"videos/{CAM}/to_timestamp": offset + lengths[e] / fps})
                offset += lengths[e] / fps
            _concat(parts, path)
            for p in parts:
                p.unlink()
    for e, row in enumerate(rows):
        state = np.stack([state_value(e, t, dim) for t in range(lengths[e])]).astype(np.float64)
        for key, values in (("observation.state", state), ("action", -state)):
            row.update({f"stats/{key}/min": values.min(0).tolist(), f"stats/{key}/max": values.max(0).tolist(),
                        f"stats/{key}/mean": values.mean(0).tolist(), f"stats/{key}/std": values.std(0).tolist(),
                        f"stats/{key}/count": [lengths[e]]})
        row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
    ep_path = root / "meta/episodes/chunk-000/file-000.parquet"
    ep_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), ep_path)

    unique_tasks = list(dict.fromkeys(tasks))
    pandas_meta = {"index_columns": ["__index_level_0__"], "column_indexes": [{"name": None, "field_name": None,
                   "pandas_type": "unicode", "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
                   "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                                "numpy_type": "int64", "metadata": None},
                               {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode",
                                "numpy_type": "object", "metadata": None}],
                   "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.3.3"}
    tasks_table = pa.table({"task_index": pa.array(range(len(unique_tasks)), pa.int64()),
                            "__index_level_0__": pa.array(unique_tasks, pa.string())})
    pq.write_table(tasks_table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()}),
                   root / "meta/tasks.parquet")
    info = {"codebase_version": "v3.0", "robot_type": "so100_follower", "total_episodes": len(lengths),
            "total_frames": int(starts[-1]), "total_tasks": len(unique_tasks), "chunks_size": chunks_size,
            "data_files_size_in_mb": 100, "video_files_size_in_mb": 200, "fps": fps,
            "splits": {"train": f"0:{len(lengths)}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4" if camera else None,
            "features": features}
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    return root
