"""Recorder, dataset layout, loader and the dataset CLI, on small synthetic episodes and a real record run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pyarrow.parquet as pq
import pytest

from robotlearn.data import EpisodeRecorder, features_from_spaces, load_demos, load_meta, window_indices
from robotlearn.data.dataset import DatasetError

OBS = gym.spaces.Dict({"joint_pos": gym.spaces.Box(-3, 3, (3,), np.float32),
                       "images/top": gym.spaces.Box(0, 255, (24, 32, 3), np.uint8)})
ACT = gym.spaces.Box(-1, 1, (2,), np.float32)


def _record(root: Path, episodes: int, steps: int = 12, images: bool = True) -> list[np.ndarray]:
    space = OBS if images else gym.spaces.Dict({"joint_pos": OBS["joint_pos"]})
    rec = EpisodeRecorder(root, 10, features_from_spaces(space, ACT, 10), robot_type="toy")
    actions = []
    for e in range(episodes):
        rec.start_episode("stack" if e % 2 else "push")
        acts = np.random.default_rng(e).uniform(-1, 1, (steps, 2)).astype(np.float32)
        for t in range(steps):
            obs = {"joint_pos": np.full(3, e * 100 + t, np.float32)}
            if images:
                obs["images/top"] = np.full((24, 32, 3), 20 * t, np.uint8)
            rec.add_frame(obs, acts[t], reward=float(t), done=t == steps - 1, success=e % 2 == 0,
                          source="human" if t < steps // 2 else "correction")
        rec.save_episode()
        actions.append(acts)
    return actions


def test_roundtrip_layout_stats_and_video(tmp_path):
    root = tmp_path / "ds"
    actions = _record(root, 3)
    meta = load_meta(root)
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 3 and info["total_frames"] == 36
    assert info["total_tasks"] == 2 and meta.tasks == ["push", "stack"]
    assert (root / "data/chunk-000/file-002.parquet").exists()
    assert (root / "videos/observation.images.top/chunk-000/file-001.mp4").exists()
    rows = pq.read_table(root / "meta/episodes/chunk-000/file-001.parquet").to_pylist()
    assert rows[0]["dataset_from_index"] == 12 and rows[0]["dataset_to_index"] == 24 and rows[0]["tasks"] == ["stack"]

    demos = load_demos(root)
    np.testing.assert_array_equal(demos.data["action"], np.concatenate(actions))
    np.testing.assert_array_equal(demos.data["index"], np.arange(36))
    assert demos.data["source"].tolist()[:12] == ["human"] * 6 + ["correction"] * 6
    frames = demos.data["observation.images.top"]
    assert frames.shape == (36, 24, 32, 3) and frames.dtype == np.uint8
    # lossy h264, but flat grey frames survive within a few levels
    assert np.abs(frames[:12, 10, 10, 0].astype(int) - 20 * np.arange(12)).max() <= 4

    stats = json.loads((root / "meta/stats.json").read_text())
    jp = demos.data["observation.joint_pos"].astype(np.float64)
    np.testing.assert_allclose(stats["observation.joint_pos"]["mean"], jp.mean(0), rtol=1e-9)
    np.testing.assert_allclose(stats["observation.joint_pos"]["std"], jp.std(0), rtol=1e-9)
    assert stats["observation.joint_pos"]["max"] == [211.0] * 3
    assert np.array(stats["observation.images.top"]["mean"]).shape == (3, 1, 1)

    # the video cache is reused: a second load does not decode again
    cache = sorted((root / ".cache").rglob("*.npy"))
    assert len(cache) == 3
    mtimes = [p.stat().st_mtime_ns for p in cache]
    load_demos(root)
    assert [p.stat().st_mtime_ns for p in cache] == mtimes


def test_discard_resume_and_errors(tmp_path):
    root = tmp_path / "ds"
    _record(root, 2, images=False)
    rec = EpisodeRecorder(root, 10, features_from_spaces(gym.spaces.Dict({"joint_pos": OBS["joint_pos"]}), ACT, 10))
    assert rec.num_episodes == 2
    rec.start_episode("push")
    rec.add_frame({"joint_pos": np.zeros(3)}, np.zeros(2))
    rec.discard_episode()
    assert load_meta(root).refreshed_info()["total_episodes"] == 2
    with pytest.raises(ValueError, match="source must be one of"):
        rec.start_episode("push")
        rec.add_frame({"joint_pos": np.zeros(3)}, np.zeros(2), source="robot")
    rec.close()
    with pytest.raises(DatasetError, match="different features"):
        EpisodeRecorder(root, 10, features_from_spaces(OBS, ACT, 10))
    with pytest.raises(DatasetError, match="not a dataset"):
        load_meta(tmp_path / "nothing")


def test_window_indices_pad_at_episode_edges():
    obs, act = window_indices(np.array([3, 7]), obs_horizon=2, pred_horizon=4)
    assert obs[0].tolist() == [0, 0] and act[0].tolist() == [0, 0, 1, 2]
    assert obs[3].tolist() == [3, 3] and act[3].tolist() == [3, 3, 4, 5]  # never crosses into episode 0
    assert act[6].tolist() == [5, 6, 6, 6]


def test_dataset_cli_info_and_visualize(tmp_path):
    from robotlearn.cli.main import main

    root = tmp_path / "ds"
    _record(root, 2)
    assert main(["dataset", "info", str(root)]) == 0
    out = tmp_path / "viz"
    assert main(["dataset", "visualize", str(root), "--out", str(out), "--episodes", "0:2"]) == 0
    assert (out / "episode_0001.png").stat().st_size > 1000
    assert (out / "grid_top.mp4").stat().st_size > 0
    assert main(["dataset", "info", str(tmp_path / "missing")]) == 2


def _wait_stopped(proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until the recorder has SIGSTOPped itself at its stop point (state T in /proc/<pid>/stat)."""
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "recorder never reached its stop point"
        time.sleep(0.02)


CAM = "observation.images.scene"


def _committed(n: int, pack: bool = False) -> set[str]:
    """Files of n committed episodes: one data/video/index file each, or (packed) all in file-000."""
    files = {"meta/info.json", "meta/stats.json", "meta/tasks.parquet"}
    for i in range(1 if pack else n):
        files |= {f"data/chunk-000/file-{i:03d}.parquet", f"videos/{CAM}/chunk-000/file-{i:03d}.mp4",
                  f"meta/episodes/chunk-000/file-{i:03d}.parquet"}
    return files


def _staged(file: int) -> set[str]:
    return {f"data/chunk-000/file-{file:03d}.tmp.parquet", f"videos/{CAM}/chunk-000/file-{file:03d}.tmp.mp4",
            f"meta/episodes/chunk-000/file-{file:03d}.tmp.parquet", "meta/stats.tmp.json", "meta/info.tmp.json"}


@pytest.mark.parametrize("stop_at, pack, left_on_disk, committed", [
    ("frame:2:5", False, {f"videos/{CAM}/recording.tmp.mp4"}, 2),          # inside episode 2, camera streaming
    ("staged:2", False, _staged(2) | {"meta/.commit.json.tmp"}, 2),        # episode 2 staged, before the commit point
    ("journaled:2", False, _staged(2) | {"meta/.commit.json"}, 3),         # after the commit point, renames pending
    ("staged:2", True, _staged(0) | {"meta/.commit.json.tmp"}, 2),         # packed: file-000 rewritten, not yet swapped
])
def test_sigkill_mid_recording_leaves_exactly_the_committed_episodes(tmp_path, stop_at, pack, left_on_disk, committed):
    """SIGKILL `robotlearn record` (camera on) at a known point: earlier episodes stay readable and verified,
    the killed episode is either absent (before its commit point) or complete (after it), and its
    temporary files are reported and then removed by the next recorder."""
    from robotlearn.data.commit import leftovers
    from robotlearn.data.integrity import problems

    root = tmp_path / "ds"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ROBOTLEARN_RECORDER_STOP_AT": stop_at}
    proc = subprocess.Popen([sys.executable, "-m", "robotlearn.cli.main", "record", "--env", "arm_reach",
                             "--backend", "mujoco", "--device", "scripted", "--cameras", "scene", "--episodes", "5",
                             "--out", str(root)] + (["--pack"] if pack else []),
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # its own process group: ffmpeg children die with it
    try:
        _wait_stopped(proc)
        deadline = time.monotonic() + 10
        while not all((root / p).exists() for p in left_on_disk):  # ffmpeg (still running) creates its output
            assert time.monotonic() < deadline, sorted(left_on_disk - {p for p in left_on_disk if (root / p).exists()})
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert on_disk == _committed(2, pack) | left_on_disk

    meta = load_meta(root)  # finishes a journaled commit; reports, never loads, what is uncommitted
    assert len(meta.episodes) == committed
    expected_leftovers = set() if stop_at.startswith("journaled") else left_on_disk
    assert {str(p.relative_to(root)) for p in meta.leftovers} == expected_leftovers
    assert not list(problems(meta, full=True))  # every committed file matches its sha256
    demos = load_demos(root)
    for e in range(committed):
        ep = demos.episode(e)
        assert len(ep["action"]) == meta.episodes[e]["length"] == 40 and np.all(ep["episode_index"] == e)
        assert ep[CAM].shape == (40, 84, 84, 3) and ep[CAM].std() > 1  # real rendered frames
        assert np.all(np.diff(ep["clock"]) > 0)  # the backend's clock, recorded per frame
    rec = EpisodeRecorder(root, meta.fps, meta.features)
    assert rec.num_episodes == committed and not leftovers(root)
    assert {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".cache" not in p.parts} == _committed(committed, pack)


def test_resumes_a_dataset_recorded_before_the_clock_column(tmp_path):
    feats = features_from_spaces(gym.spaces.Dict({"joint_pos": OBS["joint_pos"]}), ACT, 10)
    old = {k: f for k, f in feats.items() if k != "clock"}
    for features in (old, feats):
        rec = EpisodeRecorder(tmp_path / "ds", 10, features)
        rec.start_episode("push")
        rec.add_frame({"joint_pos": np.zeros(3)}, np.zeros(2), timestamp=0.5)
        rec.save_episode()
    demos = load_demos(tmp_path / "ds")
    assert rec.num_episodes == 2 and "clock" not in demos.data and demos.meta.features == old
