"""Quadrotor SAC over MAVLink with tiny budgets: a policy trained in MuJoCo with the quadrotor config acts on
the emulated PX4 vehicle through the production driver (real UDP), its transitions feed SAC's replay and an
update step, and `deploy` flies and records the checkpoint there. The long runs are bench/quad_sac.py."""

from __future__ import annotations

import numpy as np
import torch
from test_quad_mavlink import FAST_RESET, emulator

from robotlearn.cli.deploy import deploy
from robotlearn.cli.main import main as cli
from robotlearn.core.config import load_config
from robotlearn.data.replay import ReplayBuffer, symmetric_sample
from robotlearn.envs import make_env
from robotlearn.policies.sac.agent import SACAgent, obs_spec_from_space, update
from robotlearn.policies.sac.config import SACConfig
from robotlearn.policies.sac.train import ReplaySink, SACSource, train
from robotlearn.rollout import Rollout

torch.set_num_threads(1)
SHORT = [*FAST_RESET, "max_episode_steps=10"]  # 0.2 s episodes: an untrained policy cannot crash in them
TINY = {"total_steps": 40, "learning_starts": 20, "hidden": [16, 16], "batch_size": 16, "eval_every": 0,
        "eval_episodes": 1, "checkpoint_every": 0, "save_replay": False}


def test_sac_step_and_deploy_over_mavlink(tmp_path):
    cfg = load_config(SACConfig, "algos", "sac_quad_hover", TINY)
    cfg.env_overrides = [*cfg.env_overrides, *SHORT]
    # the config's demo recipe (BC pretraining, demo observation statistics) on 3 tiny expert demos
    assert cli(["record", "--env", "quad_hover", "--device", "scripted", "--episodes", "3", "--realtime", "off",
                "--out", str(tmp_path / "demos"), *cfg.env_overrides]) == 0
    cfg.demos, cfg.bc_pretrain_steps = str(tmp_path / "demos"), 20
    cfg.backend_options = {"domain_randomization": "quad_dr"}
    trained = train(cfg, tmp_path / "sim", progress_bar=False)
    with emulator(tmp_path, "--gap", "quad_gap") as (_, port):
        connection = f"udpin:127.0.0.1:{port}"
        # -- SAC collection + one update on the vehicle, with the pieces train() uses --
        env = make_env("quad_hover", backend="real", overrides=[*cfg.env_overrides], connection=connection)
        try:
            space = env.observation_space
            agent = SACAgent(cfg, obs_spec_from_space(space), env.action_space.low, env.action_space.high)
            replay = ReplayBuffer(64, {k: (s.shape, s.dtype) for k, s in space.spaces.items()}, 4)
            source = SACSource(agent.policy, np.random.default_rng(0))
            source.explore = False  # the policy's own samples go out as SET_ATTITUDE_TARGET
            sink = ReplaySink(agent, replay, None, {"episodes": 0, "interventions": 0})
            rollout = Rollout(env, source, [sink])
            rollout.start_episode(0)
            for _ in range(20):
                rollout.step()
            assert len(replay) == 20 and sink.prog["episodes"] == 2
            z = replay.state_dict()["obs/pos"][:, 2]  # the vehicle's own telemetry, near the 1 m start
            assert np.all(np.abs(z - 1.0) < 0.3), z
            before = [p.detach().clone() for p in agent.policy.actor.parameters()]
            metrics = update(agent, symmetric_sample(replay, None, 16, np.random.default_rng(1)))
            assert all(np.isfinite(v) for v in metrics.values()), metrics
            assert any(not torch.equal(a, b) for a, b in zip(before, agent.policy.actor.parameters(), strict=True))
        finally:
            env.close()
        # -- the MuJoCo-trained checkpoint deployed to the vehicle, recorded --
        result = deploy(trained["checkpoint"], "real", 1, {"connection": connection}, record=str(tmp_path / "rec"))
    assert result["backend"] == "real" and result["episodes"] == 1
    assert (tmp_path / "rec" / "meta" / "info.json").exists()
