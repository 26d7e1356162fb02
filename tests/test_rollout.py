"""The one episode runner and the env recipe: what every command, and later RaC, sysid, ROS 2 and Ray,
stand on."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from robotlearn.core.config import ConfigError
from robotlearn.rollout import (
    ActionSource,
    CallbackSink,
    DeviceSource,
    EnvRecipe,
    RandomSource,
    Rollout,
    Sink,
    checkpoint_recipe,
)
from robotlearn.teleop import make_device


def test_recipe_round_trips_through_json_and_resolves_short_ids():
    recipe = EnvRecipe("ArmPickPlace-v0", "pybullet", ["reward=sparse"], ["control_hz=20"], "scene,wrist",
                       {"interpolation": "min_jerk"})
    assert recipe.env_id == "robotlearn/ArmPickPlace-v0" and recipe.cameras == ("scene", "wrist")
    again = EnvRecipe.from_json(recipe.to_json())
    assert again == recipe and json.loads(again.to_json()) == json.loads(recipe.to_json())
    assert EnvRecipe("arm_reach").env_id == "robotlearn/ArmReach-v0"
    # the checkpoint record written before recipes existed still loads
    old = checkpoint_recipe({"env": {"id": "robotlearn/ArmReach-v0", "backend": "mujoco", "overrides": [],
                                     "cameras": []}})
    assert old == EnvRecipe("robotlearn/ArmReach-v0", "mujoco")
    with pytest.raises(ConfigError, match="did you mean 'robotlearn/ArmReach-v0'"):
        EnvRecipe("ArmRech-v0")
    with pytest.raises(ConfigError, match="no env recipe"):
        checkpoint_recipe({})
    with pytest.raises(ConfigError, match="plain gymnasium env"):
        EnvRecipe("Pendulum-v1", "pybullet")


def test_with_backend_swaps_only_the_backend_and_its_options():
    sim = EnvRecipe("ArmReach-v0", "mujoco", ["reward=sparse"], backend_options={"interpolation": "min_jerk"})
    real = sim.with_backend("real", {"port": "/tmp/x"})
    assert real.backend == "real" and real.backend_options == {"port": "/tmp/x"}
    assert real.overrides == sim.overrides and real.env_id == sim.env_id
    assert sim.with_backend(None).backend_options == {"interpolation": "min_jerk"}
    assert sim.with_backend("mujoco", {"interpolation": "linear"}).backend_options == {"interpolation": "linear"}


def test_recipe_makes_the_env_with_typed_options():
    env = EnvRecipe("ArmReach-v0", "mujoco", backend_options={"interpolation": "min_jerk"}).make()
    try:
        assert env.unwrapped.backend.options.interpolation == "min_jerk"
    finally:
        env.close()
    with pytest.raises(ConfigError, match="unknown option 'interp'"):
        EnvRecipe("ArmReach-v0", "mujoco", backend_options={"interp": "linear"}).make()
    pendulum = EnvRecipe("Pendulum-v1", None).make()
    assert set(pendulum.observation_space.spaces) == {"state"}
    pendulum.close()


class Recording(Sink):
    def __init__(self):
        self.calls = []

    def start_episode(self, obs, info, seed):
        self.calls.append(("start", seed))

    def add(self, tr):
        self.calls.append(("add", tr.source, tr.done))

    def end_episode(self, stats):
        self.calls.append(("end", stats.outcome, stats.steps))


def test_runner_feeds_sinks_labels_and_episode_stats():
    env = EnvRecipe("ArmReach-v0", "mujoco").make()
    sink = Recording()
    try:
        result = Rollout(env, DeviceSource(make_device("scripted", env)), [sink]).run(2, seed=7)
    finally:
        env.close()
    assert [c for c in sink.calls if c[0] == "start"] == [("start", 7), ("start", 8)]
    adds = [c for c in sink.calls if c[0] == "add"]
    ends = [c for c in sink.calls if c[0] == "end"]
    assert len(adds) == sum(e.steps for e in result.episodes) and all(a[1] == "policy" for a in adds)
    assert [a[2] for a in adds].count(True) == 2 and ends[0][1] == "done"
    assert result.success_rate == 1.0 and result.episodes[0].sources == {"policy": result.episodes[0].steps}
    assert set(result.episodes[0].timing_ms) == {"act", "send", "wait", "observe", "record"}


class Scripted(ActionSource):
    """Zero actions; sleeps `slow_s` on step `slow_at`; emits `event` on step `event_at`."""

    def __init__(self, space, slow_at=-1, slow_s=0.0, event_at=-1, event=""):
        self.space, self.slow_at, self.slow_s, self.event_at, self.event = space, slow_at, slow_s, event_at, event
        self.n = 0
        self.events = set()

    def reset(self, obs):
        self.n = 0

    def act(self, obs):
        if self.n == self.slow_at:
            time.sleep(self.slow_s)
        if self.n == self.event_at:
            self.events.add(self.event)
        self.n += 1
        return np.zeros(self.space.shape, np.float32), "human"

    def pop_events(self):
        out, self.events = self.events, set()
        return out


def test_realtime_pacing_holds_the_control_rate_and_names_the_section_that_overran():
    env = EnvRecipe("ArmReach-v0", "mujoco", ["max_episode_steps=15"], ["control_hz=50"]).make()
    try:
        t0 = time.monotonic()
        paced = Rollout(env, Scripted(env.action_space), realtime=True).run_episode(seed=0)
        elapsed = time.monotonic() - t0
        slow = Rollout(env, Scripted(env.action_space, slow_at=5, slow_s=0.1), realtime=True).run_episode(seed=0)
        unpaced = Rollout(env, Scripted(env.action_space), realtime=False).run_episode(seed=0)
    finally:
        env.close()
    # 15 steps at 50 Hz take >= 14 periods on the wall clock; unpaced MuJoCo runs them far faster
    assert elapsed >= 14 * 0.02 and unpaced.seconds < elapsed
    assert slow.overruns >= 1 and slow.overrun_sections["act"] >= 1, slow.summary()
    assert paced.overrun_sections["act"] == 0


def test_operator_events_end_or_stop_the_run():
    env = EnvRecipe("ArmReach-v0", "mujoco").make()
    try:
        discard = Rollout(env, Scripted(env.action_space, event_at=3, event="discard")).run_episode(seed=0)
        assert discard.outcome == "discard" and discard.steps == 4
        rollout = Rollout(env, Scripted(env.action_space, event_at=2, event="quit"))
        result = rollout.run(5, seed=0)
        assert rollout.quit and len(result.episodes) == 1 and result.episodes[0].outcome == "quit"
        assert result.kept == []
    finally:
        env.close()


def test_step_stream_resets_on_its_own_and_counts_seeds_up():
    env = EnvRecipe("ArmReach-v0", "mujoco", ["max_episode_steps=3"]).make()
    ends = []
    try:
        rollout = Rollout(env, RandomSource(env.action_space, 0), [CallbackSink(lambda tr: None, ends.append)])
        rollout.start_episode(seed=100)
        transitions = [rollout.step() for _ in range(7)]
    finally:
        env.close()
    assert [t.done for t in transitions] == [False, False, True, False, False, True, False]
    assert [e.seed for e in ends] == [100, 101]


def test_recorder_sink_stores_the_backend_clock_and_labels(tmp_path):
    from robotlearn.data.dataset import load_meta
    from robotlearn.data.loader import load_demos
    from robotlearn.data.recorder import EpisodeRecorder
    from robotlearn.rollout import RecorderSink

    recipe = EnvRecipe("ArmReach-v0", "mujoco", ["max_episode_steps=5"])
    env = recipe.make()
    try:
        sink = RecorderSink(EpisodeRecorder.for_env(tmp_path / "d", env, env_recipe=recipe.to_dict()), "reach")
        rollout = Rollout(env, DeviceSource(make_device("scripted", env)), [sink])
        rollout.run(2, seed=0)
        rollout.close()
    finally:
        env.close()
    data = load_demos(tmp_path / "d", keys=["clock", "source"])
    clock = np.asarray(data.data["clock"]).ravel()
    # the frame of step k is the observation after k control periods of 0.1 s (backend clock, reset = 0)
    np.testing.assert_allclose(clock[:5], [0.0, 0.1, 0.2, 0.3, 0.4], atol=1e-9)
    assert set(np.asarray(data.data["source"]).ravel().tolist()) == {"policy"}
    assert EnvRecipe.from_dict(load_meta(tmp_path / "d").env_recipe) == recipe
