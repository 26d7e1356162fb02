"""Checks that a dataset's files are what its metadata says, so that wrong data never loads silently.

Two levels: `check_dataset(meta)` runs on every open and costs a few file headers and index columns
(sizes and headers against the recorded manifest, parquet schemas and row ranges against info.json and the
episode index, video stream properties); `full=True` (`robotlearn dataset verify`) adds a sha256 of every
file and reads every parquet page (robotlearn writes page CRCs). Each problem is one line naming the file
and the field. Datasets written by LeRobot carry no manifest: they get every check except the hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robotlearn.data.dataset import INFO_PATH, TASKS_PATH, DatasetError, DatasetMeta, read_parquet

HASH_BLOCK = 1 << 20
ARROW_DTYPES = {"float": "float32", "double": "float64", "halffloat": "float16", "large_string": "string"}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            h.update(block)
    return h.hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    """The manifest entry of a file as it is now."""
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def header_problem(path: Path) -> str | None:
    """Parquet starts and ends with PAR1; an mp4 starts with an ftyp box. None when the header looks right."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if path.suffix == ".parquet":
            f.seek(max(size - 4, 0))
            ok = head[:4] == b"PAR1" and f.read(4) == b"PAR1"
        elif path.suffix == ".mp4":
            ok = head[4:8] == b"ftyp"
        else:
            return None
    return None if ok else f"{path}: bad {path.suffix[1:]} header or footer (truncated or overwritten)"


def column_layout(t: pa.DataType) -> tuple[str, int | None]:
    """(element dtype, values per row) of an arrow column type; values per row is None for variable lists."""
    per_row: int | None = 1
    while True:
        if isinstance(t, pa.ExtensionType):
            t = t.storage_type
        elif pa.types.is_fixed_size_list(t):
            per_row = None if per_row is None else per_row * t.list_size
            t = t.value_type
        elif pa.types.is_list(t) or pa.types.is_large_list(t):
            per_row, t = None, t.value_type
        else:
            return ARROW_DTYPES.get(str(t), str(t)), per_row


def referenced_files(meta: DatasetMeta) -> dict[Path, list[int]]:
    """Every data and video file the episode index points at -> the episodes it holds."""
    files: dict[Path, list[int]] = {}
    for e in range(len(meta.episodes)):
        files.setdefault(meta.data_file(e), []).append(e)
        for key in meta.video_keys:
            files.setdefault(meta.video_file(key, e), []).append(e)
    return files


def _manifest_problems(meta: DatasetMeta, full: bool, bad: set[Path]) -> Iterator[str]:
    for rel, entry in (meta.checksums or {}).items():
        path = meta.root / rel
        if not path.exists():
            bad.add(path)
            yield f"{path}: missing (listed in {INFO_PATH})"
        elif path.stat().st_size != entry["bytes"]:
            bad.add(path)
            yield f"{path}: {path.stat().st_size} bytes, {INFO_PATH} records {entry['bytes']} (truncated or modified)"
        elif full and sha256_file(path) != entry["sha256"]:
            bad.add(path)
            yield f"{path}: sha256 differs from {INFO_PATH} (file modified or corrupted)"


def _schema_problems(meta: DatasetMeta, path: Path, schema: pa.Schema) -> Iterator[str]:
    feats = meta.features
    stored = {k for k, f in feats.items() if f["dtype"] not in ("video",)}
    for name in schema.names:
        if name not in feats:
            yield f"{path}: column {name} is not described in {INFO_PATH} features"
    for key in stored:
        if key not in schema.names:
            yield f"{path}: column {key} is missing (field features.{key} in {INFO_PATH})"
            continue
        if feats[key]["dtype"] == "image":
            continue
        dtype, per_row = column_layout(schema.field(key).type)
        if dtype != feats[key]["dtype"]:
            yield f"{path}: column {key} holds {dtype}, {INFO_PATH} field features.{key}.dtype says {feats[key]['dtype']}"
        elif per_row is not None and per_row != int(np.prod(feats[key]["shape"])):
            yield (f"{path}: column {key} holds {per_row} values per frame, {INFO_PATH} field "
                   f"features.{key}.shape says {feats[key]['shape']}")


def _rows_problems(meta: DatasetMeta, path: Path, episodes: list[int], full: bool) -> Iterator[str]:
    """Each listed episode's rows exist, are contiguous and carry its global indices; timestamps match fps."""
    table = read_parquet(path) if full else read_parquet(path, ["episode_index", "index", "frame_index", "timestamp"])
    ep_col = table.column("episode_index").to_numpy()
    index = table.column("index").to_numpy()
    frame_index = table.column("frame_index").to_numpy()
    ts = table.column("timestamp").to_numpy().astype(np.float64)
    unlisted = sorted(set(np.unique(ep_col).tolist()) - set(episodes))
    if unlisted:
        yield f"{path}: holds rows of episode {unlisted[0]}, which meta/episodes does not place in this file"
        return
    tol = min(1e-3, 0.25 / meta.fps)
    for e in episodes:
        row = meta.episodes[e]
        where = np.flatnonzero(ep_col == e)
        n = int(row["length"])
        if len(where) != n or (n and where[-1] - where[0] != n - 1):
            yield f"{path}: episode {e} has {len(where)} rows here, meta/episodes field length says {n}"
            return
        lo = int(where[0]) if n else 0
        if not np.array_equal(index[lo:lo + n], np.arange(row["dataset_from_index"], row["dataset_to_index"])):
            yield f"{path}: episode {e}: column index differs from meta/episodes dataset_from_index/dataset_to_index"
            return
        if not np.array_equal(frame_index[lo:lo + n], np.arange(n)):
            yield f"{path}: episode {e}: column frame_index is not 0..{n - 1}"
            return
        err = np.abs(ts[lo:lo + n] - np.arange(n) / meta.fps)
        if n and err.max() > tol:
            step = float(np.median(np.diff(ts[lo:lo + n]))) if n > 1 else float("nan")
            yield f"{path}: episode {e}: timestamps step {step:.4g} s, {INFO_PATH} field fps {meta.fps:g} means {1 / meta.fps:.4g} s"
            return
        meta.rows_in_file[e] = (lo, lo + n)


def _video_problems(meta: DatasetMeta, path: Path, key: str, episodes: list[int]) -> Iterator[str]:
    from robotlearn.data.video import probe_video

    feat = meta.features[key]
    stream = probe_video(path)
    if abs(stream.fps - meta.fps) > 1e-3 * meta.fps:
        yield f"{path}: video stream at {stream.fps:g} fps, {INFO_PATH} field fps says {meta.fps:g}"
        return
    names = feat.get("names") or ["height", "width", "channels"]
    dims = dict(zip(names, feat["shape"], strict=False))
    if (stream.height, stream.width) != (dims.get("height"), dims.get("width")):
        yield (f"{path}: video is {stream.height}x{stream.width}, {INFO_PATH} field features.{key}.shape says "
               f"{dims.get('height')}x{dims.get('width')}")
        return
    for e in episodes:
        row = meta.episodes[e]
        first, last = meta.video_frames(key, e)
        span = (row[f"videos/{key}/to_timestamp"] - row[f"videos/{key}/from_timestamp"]) * meta.fps
        if abs(span - row["length"]) > 0.5:
            yield f"episode {e}: videos/{key}/from_timestamp..to_timestamp spans {span:.1f} frames, length is {row['length']}"
            return
        if last > stream.frames:
            yield f"{path}: {stream.frames} frames, episode {e} needs frames {first}..{last - 1} (truncated?)"
            return


def problems(meta: DatasetMeta, full: bool = False) -> Iterator[str]:
    """Every inconsistency found, one line each; a file with a problem is not checked further."""
    bad: set[Path] = set()
    yield from _manifest_problems(meta, full, bad)
    files = referenced_files(meta)
    video_of = {meta.video_file(k, e): k for e in range(len(meta.episodes)) for k in meta.video_keys}
    extra = [p for p in (meta.root / "meta" / "episodes").glob("chunk-*/file-*.parquet") if ".tmp" not in p.name]
    extra += [p for p in [meta.root / TASKS_PATH] if p.exists()]
    for path in list(files) + extra:
        if path in bad:
            continue
        if not path.exists():
            what = f"video {video_of[path]}" if path in video_of else "data"
            yield f"{path}: missing ({what} of episode {files[path][0]})"
            continue
        if problem := header_problem(path):
            yield problem
            continue
        try:
            if path in video_of:
                yield from _video_problems(meta, path, video_of[path], files[path])
            elif path in files:
                yield from _schema_problems(meta, path, pq.read_schema(path))
                yield from _rows_problems(meta, path, files[path], full)
            elif full:
                read_parquet(path)
        except DatasetError as err:
            yield str(err)
        except (OSError, pa.ArrowException) as err:
            yield f"{path}: unreadable: {str(err).splitlines()[0]}"


def check_dataset(meta: DatasetMeta, full: bool = False) -> None:
    """Raise the first problem as a DatasetError (used on open)."""
    for problem in problems(meta, full):
        raise DatasetError(problem)
