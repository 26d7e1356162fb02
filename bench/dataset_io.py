"""Dataset benchmark: cost of committing an episode and of opening a dataset, one file per episode vs packed.

Layouts, each measured in the same run, interleaved over ``--repeats``:
* ``per_episode`` baseline: the recorder's default, one data/video/index file per episode;
* ``packed``      LeRobot's packing (`pack=True`): each commit rewrites the latest data file and remuxes the
  latest video (no re-encoding), so its cost grows with the file, up to the size cap.

Per layout: median `save_episode` time (includes closing the episode's ffmpeg encoder), `load_meta` time
(every open: sizes, headers, schemas, row ranges, video streams) and `load_meta(verify="full")` (adds the
sha256 of every file). Ratios are against ``per_episode``. The last line is one JSON object.

    python bench/dataset_io.py [--episodes 30] [--steps 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from robotlearn.data import EpisodeRecorder, features_from_spaces, load_meta

OBS = gym.spaces.Dict({"joint_pos": gym.spaces.Box(-3, 3, (6,), np.float32),
                       "images/top": gym.spaces.Box(0, 255, (84, 84, 3), np.uint8)})
ACT = gym.spaces.Box(-1, 1, (7,), np.float32)


def run_layout(root: Path, pack: bool, episodes: int, steps: int) -> dict[str, float]:
    shutil.rmtree(root, ignore_errors=True)
    image = np.random.default_rng(0).integers(0, 255, (84, 84, 3), np.uint8)
    rec = EpisodeRecorder(root, 10, features_from_spaces(OBS, ACT, 10), robot_type="bench", pack=pack)
    saves = []
    for _ in range(episodes):
        rec.start_episode("bench")
        for t in range(steps):
            rec.add_frame({"joint_pos": np.full(6, t), "images/top": np.roll(image, t, 0)}, np.zeros(7))
        t0 = time.perf_counter()
        rec.save_episode()
        saves.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    load_meta(root)
    opened = time.perf_counter() - t0
    t0 = time.perf_counter()
    load_meta(root, verify="full")
    full = time.perf_counter() - t0
    return {"save_ms": 1e3 * float(np.median(saves)), "open_ms": 1e3 * opened, "verify_full_ms": 1e3 * full}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"per_episode": [], "packed": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name in runs:
                runs[name].append(run_layout(Path(tmp) / name, name == "packed", args.episodes, args.steps))
    out: dict[str, dict[str, float]] = {}
    for name, rows in runs.items():
        out[name] = {}
        for key in rows[0]:
            values = [r[key] for r in rows]
            out[name][key] = float(np.median(values))
            out[name][f"{key}_spread"] = float(max(values) - min(values))
        print(f"{name:<12} save {out[name]['save_ms']:7.1f} ms  open {out[name]['open_ms']:7.1f} ms  "
              f"verify --full {out[name]['verify_full_ms']:7.1f} ms  ({args.episodes} episodes x {args.steps} frames)")
    for key in ("save_ms", "open_ms", "verify_full_ms"):
        out.setdefault("ratio_packed_vs_per_episode", {})[key] = out["packed"][key] / out["per_episode"][key]
    with open("/proc/loadavg") as f:
        out["loadavg"] = f.read().split()[:3]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
