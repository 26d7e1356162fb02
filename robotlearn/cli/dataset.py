"""`robotlearn dataset info|stats|verify|convert|visualize`: inspect, check and convert datasets.

Every problem is one line (exit 2): a corrupted file, a metadata field that disagrees with the files, a
missing video. `convert` goes between LeRobot's packing and robomimic HDF5 (`*.hdf5`/`*.h5`) by the paths'
names: dataset -> dataset packs (LeRobot layout), dataset -> .hdf5 exports, .hdf5 -> dataset imports.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

HDF5_SUFFIXES = (".hdf5", ".h5")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["info", "stats", "verify", "convert", "visualize"])
    parser.add_argument("root", help="dataset directory (LeRobot v3 layout); convert: the source (dataset or .hdf5)")
    parser.add_argument("dest", nargs="?", help="convert: destination (new dataset directory or .hdf5 file)")
    parser.add_argument("--json", action="store_true", help="stats: print the raw stats as JSON")
    parser.add_argument("--clean", action="store_true", help="verify: delete temporary files of an uncommitted episode")
    parser.add_argument("--fps", type=float, default=None, help="convert from robomimic: frame rate (default 20)")
    parser.add_argument("--data-mb", type=float, default=100, help="convert to a dataset: data file size cap (MB)")
    parser.add_argument("--video-mb", type=float, default=200, help="convert to a dataset: video file size cap (MB)")
    parser.add_argument("--out", default=None, help="visualize: output directory (default ROOT/viz)")
    parser.add_argument("--episodes", default="0:4", help="visualize: episodes as 'a:b' or '0,3,7'")


def _episodes(text: str, n: int) -> list[int]:
    if ":" in text:
        lo, _, hi = text.partition(":")
        return list(range(int(lo or 0), min(int(hi or n), n)))
    eps = [int(x) for x in text.split(",") if x]
    bad = [e for e in eps if not 0 <= e < n]
    if bad:
        raise ValueError(f"episodes {bad} out of range; dataset has {n}")
    return eps


def _fmt(values: list) -> str:
    """A stat vector in a table cell: short vectors in full, long ones as their range."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    if flat.size <= 4:
        return " ".join(f"{v:.4g}" for v in flat)
    return f"[{flat.size}] {flat.min():.4g}..{flat.max():.4g}"


def print_info(root: str) -> None:
    from robotlearn.data.dataset import load_meta
    from robotlearn.data.integrity import referenced_files
    from robotlearn.data.loader import load_demos

    meta = load_meta(root)
    info = meta.info
    labelled = [bool(e["success"]) for e in meta.episodes if e.get("success") is not None]
    success = f"{sum(labelled)}/{len(labelled)}" if labelled or not meta.episodes else "not recorded"
    print(f"dataset {meta.root}  ({info['codebase_version']}, robot {meta.robot_type or 'unknown (not recorded)'})")
    print(f"episodes {len(meta.episodes)}  frames {meta.total_frames}  fps {meta.fps:g}  successful episodes {success}")
    print(f"tasks: {meta.tasks}")
    recipe = meta.env_recipe
    print(f"env recipe: {json.dumps(recipe) if recipe else 'none recorded'}")
    files = referenced_files(meta)
    n_video = sum(1 for p in files if p.suffix == ".mp4")
    print(f"files: {len(files) - n_video} data, {n_video} video; checksums "
          + ("recorded (verify with `robotlearn dataset verify`)" if meta.checksums is not None else "not recorded"))
    for key, feat in meta.features.items():
        print(f"  {key:<32} {feat['dtype']:<8} {feat['shape']}")
    if meta.leftovers:
        print(f"leftovers: {len(meta.leftovers)} temporary files of an uncommitted episode (e.g. {meta.leftovers[0]}); "
              "the recorder removes them when it reopens, or `robotlearn dataset verify --clean`")
    if meta.episodes:
        sources = Counter(load_demos(meta.root, ["source"]).data["source"].tolist())
        print("sources: " + ", ".join(f"{k} {v}" for k, v in sorted(sources.items())))


def print_stats(root: str, raw: bool) -> None:
    from robotlearn.data.dataset import load_meta

    meta = load_meta(root)
    stats = meta.compute_stats() if meta.episodes else {}
    if raw:
        print(json.dumps(stats, indent=1))
        return
    print(f"{'feature':<28} {'count':>7}  {'min':<22} {'max':<22} {'mean':<22} {'std':<22}")
    for key, s in stats.items():
        print(f"{key:<28} {int(s['count'][0]):>7}  " + " ".join(f"{_fmt(s[k]):<22}" for k in ("min", "max", "mean", "std")))


def verify(root: str, clean: bool) -> int:
    from robotlearn.data.dataset import load_meta
    from robotlearn.data.integrity import problems

    meta = load_meta(root, verify="none")
    found = list(problems(meta, full=True))
    for line in found:
        print(f"robotlearn dataset: error: {line}", file=sys.stderr)
    for path in meta.leftovers:
        if clean:
            path.unlink()
        print(f"leftover {'removed' if clean else '(uncommitted episode, safe to delete)'}: {path}")
    if found:
        return 2
    hashed = "sha256 of every file" if meta.checksums is not None else "no checksums recorded (not written by robotlearn)"
    print(f"ok: {len(meta.episodes)} episodes, {meta.total_frames} frames; {hashed}")
    return 0


def convert(src: str, dest: str | None, args: argparse.Namespace) -> None:
    from robotlearn.data import convert as conv

    if not dest:
        raise ValueError("convert needs a destination: robotlearn dataset convert SRC DEST")
    src_h5, dest_h5 = Path(src).suffix in HDF5_SUFFIXES, Path(dest).suffix in HDF5_SUFFIXES
    if src_h5 and dest_h5:
        raise ValueError("convert: source and destination are both HDF5; one side must be a dataset directory")
    if src_h5:
        n = conv.from_robomimic(src, dest, fps=args.fps)
    elif dest_h5:
        n = conv.to_robomimic(src, dest)
    else:
        n = conv.pack(src, dest, args.data_mb, args.video_mb)
    print(f"converted {n} episodes: {src} -> {dest}")


def run(args: argparse.Namespace) -> int:
    if args.action == "info":
        print_info(args.root)
    elif args.action == "stats":
        print_stats(args.root, args.json)
    elif args.action == "verify":
        return verify(args.root, args.clean)
    elif args.action == "convert":
        convert(args.root, args.dest, args)
    else:
        from robotlearn.data.dataset import load_meta
        from robotlearn.data.visualize import plot_episodes, video_grid

        meta = load_meta(args.root)
        eps = _episodes(args.episodes, len(meta.episodes))
        out = Path(args.out) if args.out else meta.root / "viz"
        for path in plot_episodes(meta.root, out, eps) + video_grid(meta.root, out, eps):
            print(path)
    return 0
