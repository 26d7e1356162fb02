"""Conversions: any readable dataset -> LeRobot's packed layout, and robomimic HDF5 in both directions.

Packing copies data rows and remuxes video packets (no re-encoding), so it is lossless: values, labels and
decoded frames are identical. robomimic stores raw image arrays, so frames going to robomimic are decoded
from mp4 and frames coming from it are encoded once (lossy, like any recording); low-dim values, rewards,
dones, tasks and source labels survive exactly.

robomimic's layout (its docs, "Dataset Structure"): `data` (attrs `total`, `env_args` JSON) with groups
`demo_<i>` (attr `num_samples`) holding `actions` (N,A), `rewards` (N,), `dones` (N,) and `obs/<key>`;
image observations are uint8 (N,H,W,3) named `<camera>_image`. robotlearn adds `source` and the task
as extras robomimic ignores.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robotlearn.data.dataset import MISSING_SOURCE, SOURCES, DatasetError, load_meta, read_parquet
from robotlearn.data.recorder import EpisodeRecorder, features_from_spaces

IMAGE_SUFFIX = "_image"


def pack(src: str | Path, dst: str | Path, data_files_size_in_mb: float = 100,
         video_files_size_in_mb: float = 200) -> int:
    """Copy dataset `src` into a new dataset `dst` in LeRobot's packing; returns the episodes copied."""
    meta = load_meta(src)
    dst = Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise DatasetError(f"{dst}: exists and is not empty; convert into a new directory")
    for key in meta.video_keys:
        files = [meta.video_file(key, e) for e in range(len(meta.episodes))]
        if len(set(files)) != len(files):
            raise DatasetError(f"{meta.root}: {key} already packs several episodes per video; cutting them apart "
                               "without re-encoding is not supported (the dataset is already in LeRobot's packing)")
    rec = EpisodeRecorder(dst, meta.fps, meta.features, meta.robot_type or "", meta.env_recipe, pack=True,
                          data_files_size_in_mb=data_files_size_in_mb, video_files_size_in_mb=video_files_size_in_mb)
    for e, row in enumerate(meta.episodes):
        if len(row["tasks"]) != 1:
            raise DatasetError(f"{meta.root}: episode {e} has {len(row['tasks'])} tasks; packing keeps one per episode")
        lo, hi = meta.rows_in_file[e]
        table = read_parquet(meta.data_file(e)).slice(lo, hi - lo).replace_schema_metadata(None)
        segments = {}
        for key in meta.video_keys:
            segments[key] = rec.segment_path(key)
            shutil.copyfile(meta.video_file(key, e), segments[key])
        loop_stats = row.get("robotlearn/loop_stats")
        rec.commit_episode(table, row["tasks"][0], segments, meta.episode_stats(row), bool(row.get("success", False)),
                           json.loads(loop_stats) if loop_stats else None)
    return len(meta.episodes)


def _obs_key(feature_key: str) -> str | None:
    """Dataset feature -> robomimic obs key ("observation.images.top" -> "top_image")."""
    if feature_key.startswith("observation.images."):
        return feature_key.removeprefix("observation.images.") + IMAGE_SUFFIX
    if feature_key.startswith("observation."):
        return feature_key.removeprefix("observation.")
    return None


def to_robomimic(src: str | Path, out: str | Path) -> int:
    """Write dataset `src` as a robomimic HDF5 file; returns the demos written."""
    import h5py

    from robotlearn.data.loader import load_demos

    demos = load_demos(src)
    meta = demos.meta
    out = Path(out)
    if out.exists():
        raise DatasetError(f"{out}: exists; choose a new file")
    tmp = out.with_name(out.name + ".tmp")
    recipe = meta.env_recipe or {}
    with h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        data.attrs["total"] = demos.num_frames
        data.attrs["env_args"] = json.dumps({"env_name": recipe.get("id") or meta.robot_type or "", "type": "robotlearn",
                                             "env_kwargs": recipe, "robot_type": meta.robot_type or "",
                                             "fps": meta.fps})
        for e, row in enumerate(meta.episodes):
            ep = demos.episode(e)
            n = len(ep["action"])
            g = data.create_group(f"demo_{e}")
            g.attrs["num_samples"] = n
            g.attrs["task"] = row["tasks"][0] if row["tasks"] else ""
            g.create_dataset("actions", data=ep["action"].reshape(n, -1))
            g.create_dataset("rewards", data=ep["next.reward"].reshape(n) if "next.reward" in ep else np.zeros(n))
            g.create_dataset("dones", data=(ep["next.done"].reshape(n) if "next.done" in ep
                                            else np.arange(n) == n - 1).astype(np.int64))
            if "next.success" in ep:
                g.create_dataset("success", data=ep["next.success"].reshape(n).astype(np.int64))
            g.create_dataset("source", data=np.asarray(ep["source"], dtype=object), dtype=h5py.string_dtype())
            for key, values in ep.items():
                obs = _obs_key(key)
                if obs is not None:
                    g.create_dataset(f"obs/{obs}", data=values, compression="gzip" if values.ndim == 4 else None)
    tmp.replace(out)
    return len(meta.episodes)


def _demo_names(data: Any) -> list[str]:
    names = [k for k in data if k.startswith("demo_")]
    try:
        return sorted(names, key=lambda k: int(k.removeprefix("demo_")))
    except ValueError:
        raise DatasetError(f"robomimic file: demo groups must be named demo_<number>, got {names[:3]}") from None


def from_robomimic(src: str | Path, dst: str | Path, fps: float | None = None, task: str | None = None) -> int:
    """Read a robomimic HDF5 file into a new robotlearn dataset; returns the demos converted."""
    import h5py

    src = Path(src)
    try:
        f = h5py.File(src, "r")
    except OSError as err:
        raise DatasetError(f"{src}: not a readable HDF5 file ({err})") from None
    with f:
        if "data" not in f:
            raise DatasetError(f"{src}: no `data` group (not a robomimic file)")
        data = f["data"]
        names = _demo_names(data)
        if not names:
            raise DatasetError(f"{src}: `data` holds no demo_<i> groups")
        try:
            env_args = json.loads(data.attrs.get("env_args", "{}"))
        except json.JSONDecodeError:
            raise DatasetError(f"{src}: attribute data.env_args is not JSON") from None
        first = data[names[0]]
        for need in ("actions", "obs"):
            if need not in first:
                raise DatasetError(f"{src}: {names[0]} has no `{need}`")
        spaces = {}
        for key, ds in first["obs"].items():
            if key.endswith(IMAGE_SUFFIX) and ds.ndim == 4:
                spaces["images/" + key.removesuffix(IMAGE_SUFFIX)] = gym.spaces.Box(0, 255, ds.shape[1:], np.uint8)
            else:
                spaces[key] = gym.spaces.Box(-np.inf, np.inf, ds.shape[1:] or (1,), np.float32)
        act = first["actions"]
        fps = float(fps or env_args.get("fps") or 20.0)  # robosuite's default control rate
        features = features_from_spaces(gym.spaces.Dict(spaces),
                                        gym.spaces.Box(-np.inf, np.inf, act.shape[1:] or (1,), np.float32), fps)
        recipe = env_args.get("env_kwargs") if env_args.get("type") == "robotlearn" else {"robomimic_env_args": env_args}
        rec = EpisodeRecorder(dst, fps, features, env_args.get("robot_type") or env_args.get("env_name") or "robomimic",
                              recipe)
        if rec.num_episodes:
            raise DatasetError(f"{dst}: exists with episodes; convert into a new directory")
        try:
            for name in names:
                _convert_demo(rec, data[name], name, spaces, src, task or env_args.get("env_name", ""))
        finally:
            rec.close()
    return len(names)


def _convert_demo(rec: EpisodeRecorder, g: Any, name: str, spaces: dict, src: Path, default_task: str) -> None:
    actions = np.asarray(g["actions"])
    n = len(actions)
    obs = {}
    for key in spaces:
        h5key = key.removeprefix("images/") + IMAGE_SUFFIX if key.startswith("images/") else key
        if h5key not in g["obs"]:
            raise DatasetError(f"{src}: {name}/obs has no {h5key!r}, which demo_0 has")
        obs[key] = np.asarray(g["obs"][h5key])
        if len(obs[key]) != n:
            raise DatasetError(f"{src}: {name}/obs/{h5key} has {len(obs[key])} samples, actions has {n}")
    rewards = np.asarray(g["rewards"]) if "rewards" in g else np.zeros(n)
    dones = np.asarray(g["dones"]).astype(bool) if "dones" in g else np.arange(n) == n - 1
    success = np.asarray(g["success"]).astype(bool) if "success" in g else dones
    sources = [s.decode() if isinstance(s, bytes) else str(s) for s in g["source"]] if "source" in g else [MISSING_SOURCE] * n
    bad = sorted(set(sources) - set(SOURCES))
    if bad:
        raise DatasetError(f"{src}: {name}/source holds {bad[0]!r}; known: {', '.join(SOURCES)}")
    task = g.attrs.get("task", default_task)
    rec.start_episode(task.decode() if isinstance(task, bytes) else str(task))
    for t in range(n):
        rec.add_frame({k: v[t] for k, v in obs.items()}, actions[t], float(rewards[t]), bool(dones[t]),
                      bool(success[t]), sources[t])
    rec.save_episode()
