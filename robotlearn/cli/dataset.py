"""`robotlearn dataset info|stats|visualize DIR`: inspect a recorded dataset."""

from __future__ import annotations

import argparse
import json
from collections import Counter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["info", "stats", "visualize"])
    parser.add_argument("root", help="dataset directory (LeRobot v3 layout)")
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


def run(args: argparse.Namespace) -> int:
    from robotlearn.data.dataset import load_meta

    meta = load_meta(args.root)
    if args.action == "info":
        info = meta.info
        success = sum(bool(e.get("success")) for e in meta.episodes)
        print(f"dataset {meta.root}  ({info['codebase_version']}, robot {info.get('robot_type') or '?'})")
        print(f"episodes {len(meta.episodes)}  frames {meta.total_frames}  fps {meta.fps:g}  "
              f"successful episodes {success}/{len(meta.episodes)}")
        print(f"tasks: {meta.tasks}")
        for key, feat in meta.features.items():
            print(f"  {key:<32} {feat['dtype']:<8} {feat['shape']}")
        if meta.episodes:
            from robotlearn.data.loader import load_demos

            sources = Counter(load_demos(meta.root, ["source"]).data["source"].tolist())
            print("sources: " + ", ".join(f"{k} {v}" for k, v in sorted(sources.items())))
    elif args.action == "stats":
        print(json.dumps(meta.compute_stats() if meta.episodes else {}, indent=1))
    else:
        from pathlib import Path

        from robotlearn.data.visualize import plot_episodes, video_grid

        eps = _episodes(args.episodes, len(meta.episodes))
        out = Path(args.out) if args.out else meta.root / "viz"
        for path in plot_episodes(meta.root, out, eps) + video_grid(meta.root, out, eps):
            print(path)
    return 0
