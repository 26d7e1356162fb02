"""ArmReach on a short budget: SAC learns in MuJoCo, and the same checkpoint runs unchanged on PyBullet
and, through the production servo driver, on the emulated arm (recorded with source labels).

The full-budget figures (>= 95% MuJoCo, >= 90% PyBullet / emulated arm) come from `robotlearn quickstart`;
here the bar is looser: clear improvement over the untrained policy, and transfer within a margin.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robotlearn.cli.deploy import deploy
from robotlearn.cli.eval import evaluate_checkpoint
from robotlearn.cli.quickstart import start_emulator
from robotlearn.core.config import load_config
from robotlearn.data.loader import load_demos
from robotlearn.policies.sac.agent import SACAgent, obs_spec_from_space
from robotlearn.policies.sac.config import SACConfig
from robotlearn.policies.sac.train import env_recipe, train
from robotlearn.rollout import PolicySource, Rollout

torch.set_num_threads(1)
EPISODES = 5


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cfg = load_config(SACConfig, "algos", "sac_arm_reach",
                      ["total_steps=1500", "learning_starts=300", "eval_every=0", "checkpoint_every=0",
                       f"eval_episodes={EPISODES}", "save_replay=false"])
    result = train(cfg, tmp_path_factory.mktemp("reach"), progress_bar=False)
    return cfg, result


def untrained_return(cfg: SACConfig) -> float:
    env = env_recipe(cfg).make()
    torch.manual_seed(123)
    agent = SACAgent(cfg, obs_spec_from_space(env.observation_space), env.action_space.low, env.action_space.high)
    try:
        return Rollout(env, PolicySource(agent.policy)).run(EPISODES, seed=1000).mean_return
    finally:
        env.close()


def test_sac_improves_on_arm_reach_in_mujoco(trained):
    cfg, result = trained
    mujoco = evaluate_checkpoint(result["checkpoint"], "mujoco", EPISODES, seed=1000)
    baseline = untrained_return(cfg)
    # returns are -sum(distance to goal, m) over 40 steps: the trained policy must close much of the gap
    assert mujoco["mean_return"] > 0.6 * baseline, (mujoco, baseline)


def test_same_checkpoint_on_pybullet_and_emulated_real_arm(trained, tmp_path):
    _, result = trained
    ckpt = result["checkpoint"]
    mujoco = evaluate_checkpoint(ckpt, "mujoco", EPISODES, seed=1000)
    pybullet = evaluate_checkpoint(ckpt, "pybullet", EPISODES, seed=1000)
    assert pybullet["mean_return"] > 1.3 * mujoco["mean_return"], (pybullet, mujoco)  # returns are negative
    link = str(tmp_path / "arm0")
    emulator = start_emulator(link, tmp_path / "emulator.log")
    try:
        real = deploy(ckpt, "real", 2, {"port": link}, record=str(tmp_path / "rollouts"), seed=1000)
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    mujoco2 = np.mean(evaluate_checkpoint(ckpt, "mujoco", 2, seed=1000)["mean_return"])
    assert real["mean_return"] > 1.3 * mujoco2 - 0.5, (real, mujoco2)
    demos = load_demos(tmp_path / "rollouts", keys=["action", "source"])
    assert len(demos.episode_ends) == 2
    assert set(np.asarray(demos.data["source"]).ravel().tolist()) == {"policy"}


def test_interventions_are_recorded_and_learned_from(trained, tmp_path):
    from safetensors.numpy import load_file

    from robotlearn.data.replay import SOURCE_IDS

    _, result = trained
    # deploy: the operator (scripted stand-in) takes the first 20 steps of episode 0; labels follow
    summary = deploy(result["checkpoint"], "mujoco", 2, record=str(tmp_path / "hil"), intervene="scripted")
    assert summary["intervention_rate"] == 20 / 80
    sources = load_demos(tmp_path / "hil", keys=["source"]).data["source"].ravel().tolist()
    assert sources[:20] == ["human"] * 20 and set(sources[20:]) == {"policy"}
    # training: intervention steps land in the online buffer and in the demo half of each batch
    cfg = load_config(SACConfig, "algos", "sac_arm_reach",
                      ["total_steps=80", "learning_starts=40", "hidden=[16,16]", "batch_size=16", "eval_every=0",
                       "eval_episodes=1", "checkpoint_every=0"])
    out = train(cfg, tmp_path / "run", progress_bar=False, intervene="scripted")
    replay = load_file(str(tmp_path / "run" / "checkpoint" / "replay.safetensors"))
    assert (replay["online/source"] == SOURCE_IDS["human"]).sum() == 20
    assert (replay["demos/source"] == SOURCE_IDS["human"]).sum() == 20
    assert out["steps"] == 80
    # RLPD: a recorded dataset becomes the demo buffer (one transition per recorded step with a successor)
    cfg.demos = str(tmp_path / "hil")
    train(cfg, tmp_path / "rlpd", progress_bar=False)
    replay = load_file(str(tmp_path / "rlpd" / "checkpoint" / "replay.safetensors"))
    assert (replay["demos/source"] == SOURCE_IDS["demo"]).sum() == 2 * 39
