"""LeRobot compatibility: datasets laid out as LeRobot's writer does load exactly; packing into LeRobot's
layout and robomimic HDF5 round-trip; the recorder's own packing and new metadata (clock, loop stats, recipe)."""

from __future__ import annotations

import json

import gymnasium as gym
import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lerobot_layout import CAM, frame_level, state_value, write_lerobot_dataset

from robotlearn.cli.main import main
from robotlearn.data import EpisodeRecorder, features_from_spaces, load_demos, load_meta
from robotlearn.data.convert import from_robomimic, to_robomimic
from robotlearn.data.dataset import DatasetError
from robotlearn.data.integrity import problems

OBS = gym.spaces.Dict({"joint_pos": gym.spaces.Box(-3, 3, (3,), np.float32),
                       "images/top": gym.spaces.Box(0, 255, (24, 32, 3), np.uint8)})
ACT = gym.spaces.Box(-1, 1, (2,), np.float32)


def record(root, episodes=4, steps=8, pack=False, **kw) -> EpisodeRecorder:
    """Episodes with distinct values, flat frames, mixed source labels, clock and loop stats."""
    rec = EpisodeRecorder(root, 10, features_from_spaces(OBS, ACT, 10), robot_type="toy",
                          env_recipe={"id": "robotlearn/Toy-v0", "backend": "mujoco"}, pack=pack, **kw)
    for e in range(episodes):
        rec.start_episode("stack" if e % 2 else "push")
        for t in range(steps + e):
            rec.add_frame({"joint_pos": np.full(3, e * 100 + t), "images/top": np.full((24, 32, 3), 8 * t + 30 * e, np.uint8)},
                          np.array([t, -e], np.float32) / 10, reward=0.5 * t, done=t == steps + e - 1, success=e % 2 == 1,
                          source=("human", "policy", "correction")[t % 3], timestamp=0.1 * t + 0.004 * e)
        rec.save_episode(loop_stats={"overruns": e, "late_ticks": 2 * e})
    return rec


def test_loads_every_episode_of_a_lerobot_written_dataset(tmp_path):
    root = write_lerobot_dataset(tmp_path / "lr")
    meta = load_meta(root)
    assert meta.tasks == ["pick the cube", "place the cube"] and meta.robot_type == "so100_follower"
    demos = load_demos(root)
    for e, n in enumerate((30, 25, 20, 15)):
        ep = demos.episode(e)
        np.testing.assert_array_equal(ep["observation.state"], np.stack([state_value(e, t, 6) for t in range(n)]))
        np.testing.assert_array_equal(ep["action"], -ep["observation.state"])
        assert ep["observation.images.front"].shape == (n, 48, 64, 3)
        levels = ep["observation.images.front"][:, 20, 30, 0].astype(int)
        assert np.abs(levels - [frame_level(e, t) for t in range(n)]).max() <= 4  # episode 1/3: 2nd half of a video
        assert ep["source"].tolist() == ["demo"] * n  # no `source` column: LeRobot data are demos
        assert ep["task_index"].tolist() == [e % 2] * n and ep["episode_index"].tolist() == [e] * n
    assert meta.data_file(3).parent.name == "chunk-001" and meta.video_file(CAM, 1) == meta.video_file(CAM, 0)


def test_state_only_episode_of_a_shared_file_is_its_own_rows(tmp_path):
    """The issue's case: 2 state-only episodes (30 and 25 frames) in one file; episode 0 alone is 30 rows."""
    root = write_lerobot_dataset(tmp_path / "lr", lengths=(30, 25), data_files=((0, 1),), camera=None)
    for e, n in ((0, 30), (1, 25)):
        state = load_demos(root, ["observation.state"], episodes=[e]).data["observation.state"]
        np.testing.assert_array_equal(state, np.stack([state_value(e, t, 6) for t in range(n)]))


def _rewrite_index(root, edit):
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    rows = pq.read_table(path).to_pylist()
    pq.write_table(pa.Table.from_pylist(edit(rows)), path)


def test_index_that_would_mix_episodes_raises(tmp_path):
    """Wrong data must not load: an index claiming episode 0 spans both episodes' rows, or swapped lengths."""
    root = write_lerobot_dataset(tmp_path / "a", lengths=(30, 25), data_files=((0, 1),), camera=None)

    def one_long_episode(rows):
        rows[0].update(length=55, dataset_to_index=55)
        return rows[:1]

    _rewrite_index(root, one_long_episode)
    info = json.loads((root / "meta/info.json").read_text())
    (root / "meta/info.json").write_text(json.dumps({**info, "total_episodes": 1}))  # consistent counters: rows must tell
    with pytest.raises(DatasetError, match="holds rows of episode 1"):
        load_demos(root, ["observation.state"], episodes=[0])

    root = write_lerobot_dataset(tmp_path / "b", lengths=(30, 25), data_files=((0, 1),), camera=None)

    def swapped(rows):
        rows[0].update(length=25, dataset_to_index=25)
        rows[1].update(length=30, dataset_from_index=25)
        return rows

    _rewrite_index(root, swapped)
    with pytest.raises(DatasetError, match="episode 0 has 30 rows here, meta/episodes field length says 25"):
        load_demos(root, ["observation.state"], episodes=[0])


def test_pack_round_trip_is_lossless(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "packed"
    record(src, episodes=5).close()
    assert main(["dataset", "convert", str(src), str(dst), "--data-mb", "0.01", "--video-mb", "0.006"]) == 0
    a, b = load_demos(src), load_demos(dst)
    ma, mb = a.meta, b.meta
    files = [(r["data/chunk_index"], r["data/file_index"]) for r in mb.episodes]
    videos = [(r[f"videos/{CAM2}/chunk_index"], r[f"videos/{CAM2}/file_index"]) for r in mb.episodes]
    assert len(set(files)) < len(files) and len(set(videos)) < len(videos)  # several episodes per file
    assert len(set(videos)) > 1  # and the size cap started a new file
    assert set(a.data) == set(b.data)
    for key in a.data:  # frames included: packets are remuxed, never re-encoded
        np.testing.assert_array_equal(a.data[key], b.data[key], err_msg=key)
    assert mb.tasks == ma.tasks and mb.robot_type == "toy" and mb.env_recipe == ma.env_recipe
    for ra, rb in zip(ma.episodes, mb.episodes, strict=True):
        assert (ra["success"], ra["robotlearn/loop_stats"], ra["tasks"]) == (rb["success"], rb["robotlearn/loop_stats"], rb["tasks"])
    assert not list(problems(load_meta(dst, verify="none"), full=True))
    # appending to the packed dataset continues its latest files
    rec = record(dst, episodes=1, pack=True, data_files_size_in_mb=0.01, video_files_size_in_mb=0.006)
    assert rec.num_episodes == 6 and load_demos(dst).episode(5)["observation.joint_pos"][0, 0] == 0


CAM2 = "observation.images.top"


def test_recorder_packing_and_new_metadata(tmp_path):
    root = tmp_path / "ds"
    record(root, episodes=3, pack=True).close()
    meta = load_meta(root)
    assert {(r["data/file_index"], r[f"videos/{CAM2}/file_index"], r["meta/episodes/file_index"]) for r in meta.episodes} == {(0, 0, 0)}
    assert [r[f"videos/{CAM2}/from_timestamp"] for r in meta.episodes] == pytest.approx([0.0, 0.8, 1.7])
    demos = load_demos(root)
    ep = demos.episode(2)
    np.testing.assert_allclose(ep["clock"], 0.1 * np.arange(10) + 0.008)  # the backend clock, not frame_index/fps
    np.testing.assert_allclose(ep["timestamp"], np.arange(10) / 10, atol=1e-6)  # LeRobot's video-sync time
    assert ep["observation.joint_pos"][:, 0].tolist() == [200 + t for t in range(10)]
    assert np.abs(ep[CAM2][:, 5, 5, 0].astype(int) - (8 * np.arange(10) + 60)).max() <= 4
    assert json.loads(meta.episodes[2]["robotlearn/loop_stats"]) == {"overruns": 2, "late_ticks": 4}
    info = meta.info
    assert info["robot_type"] == "toy" and info["robotlearn"]["env_recipe"]["id"] == "robotlearn/Toy-v0"
    assert "source" in info["robotlearn"]["extensions"]["frame_columns"]
    assert set(info["robotlearn"]["files"]) >= {"data/chunk-000/file-000.parquet", "meta/tasks.parquet",
                                                f"videos/{CAM2}/chunk-000/file-000.mp4"}


def test_recorder_for_env_writes_robot_and_recipe(tmp_path):
    from robotlearn.envs import register_envs

    register_envs()
    env = gym.make("robotlearn/ArmReach-v0", backend="mujoco")
    try:
        rec = EpisodeRecorder.for_env(tmp_path / "ds", env)
    finally:
        env.close()
    info = load_meta(tmp_path / "ds").info
    assert info["robot_type"] == "arm6" and info["robotlearn"]["env_recipe"]["backend"] == "mujoco"
    assert info["robotlearn"]["env_recipe"]["id"] == "robotlearn/ArmReach-v0" and rec.num_episodes == 0


def test_robomimic_round_trip(tmp_path):
    src = tmp_path / "src"
    record(src, episodes=3).close()
    h5 = tmp_path / "demos.hdf5"
    assert main(["dataset", "convert", str(src), str(h5)]) == 0
    with h5py.File(h5) as f:
        assert f["data"].attrs["total"] == 8 + 9 + 10
        g = f["data/demo_1"]
        assert g["actions"].shape == (9, 2) and g["obs/joint_pos"].shape == (9, 3) and g["obs/top_image"].shape == (9, 24, 32, 3)
        assert g["dones"][-1] == 1 and g.attrs["num_samples"] == 9
    back = tmp_path / "back"
    assert main(["dataset", "convert", str(h5), str(back), "--fps", "10"]) == 0
    a, b = load_demos(src), load_demos(back)
    for key in ("observation.joint_pos", "action", "next.reward", "next.done", "next.success", "source", "episode_index"):
        np.testing.assert_array_equal(a.data[key], b.data[key], err_msg=key)
    assert b.meta.tasks == a.meta.tasks and b.meta.env_recipe == a.meta.env_recipe and b.meta.robot_type == "toy"
    frames = np.abs(a.data[CAM2].astype(int) - b.data[CAM2].astype(int))
    assert frames.max() <= 4  # decoded once, encoded once more


def test_robomimic_file_without_robotlearn_extras(tmp_path):
    h5 = tmp_path / "rm.hdf5"
    with h5py.File(h5, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": {"control_freq": 20}})
        for i, n in enumerate((5, 7)):
            g = data.create_group(f"demo_{i}")
            g.create_dataset("actions", data=np.full((n, 7), i, np.float64))
            g.create_dataset("rewards", data=np.arange(n, dtype=np.float64))
            g.create_dataset("dones", data=(np.arange(n) == n - 1).astype(np.int64))
            g.create_dataset("obs/robot0_eef_pos", data=np.full((n, 3), 10 * i + 1.5))
            g.create_dataset("obs/agentview_image", data=np.full((n, 16, 16, 3), 100, np.uint8))
    from_robomimic(h5, tmp_path / "ds")
    demos = load_demos(tmp_path / "ds")
    assert demos.data["source"].tolist() == ["demo"] * 12 and demos.meta.tasks == ["Lift"]
    assert demos.episode(1)["observation.robot0_eef_pos"].tolist() == [[11.5] * 3] * 7
    assert demos.data["observation.images.agentview"].shape == (12, 16, 16, 3)
    with pytest.raises(DatasetError, match="not a readable HDF5"):
        from_robomimic(tmp_path / "ds" / "meta" / "info.json", tmp_path / "x")
    with pytest.raises(DatasetError, match="exists"):
        to_robomimic(tmp_path / "ds", h5)
