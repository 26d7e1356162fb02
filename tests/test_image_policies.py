"""Image policies: a training run in miniature on each sim, then the checkpoint acting in the other sim.

SAC from pixels (configs/algos/sac_arm_reach_pixels.yaml: proprio + the scene camera, no goal state) and
the diffusion policy from both cameras (configs/algos/diffusion_images.yaml: proprio + images/scene +
images/wrist, no cube or goal state). Budgets are tiny: these check the mechanics (rendered observations
into replay / the dataset, conv encoders trained, checkpoints that load and act on the other engine);
what a real budget reaches is bench/image_policies.py.
"""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import robotlearn  # noqa: F401 - registers the envs
from robotlearn.cli.main import main
from robotlearn.core.config import load_config
from robotlearn.policies.sac.config import SACConfig
from robotlearn.policies.sac.train import train

torch.set_num_threads(1)
OTHER = {"mujoco": "pybullet", "pybullet": "mujoco"}


@pytest.mark.parametrize("sim", ["mujoco", "pybullet"])
def test_sac_from_pixels_trains_on_each_sim_and_acts_on_the_other(sim, tmp_path):
    from robotlearn.cli.eval import evaluate_checkpoint

    cfg = load_config(SACConfig, "algos", "sac_arm_reach_pixels", [
        f"backend={sim}", "total_steps=48", "learning_starts=40", "batch_size=8", "hidden=[16,16]",
        "image_features=8", "buffer_size=64", "eval_every=0", "eval_episodes=1", "checkpoint_every=0",
        "save_replay=false", "log_every=8"])
    result = train(cfg, tmp_path, progress_bar=False)
    config = json.loads((tmp_path / "checkpoint" / "config.json").read_text())
    assert set(config["obs_spec"]) == {"joint_pos", "joint_vel", "ee_pos", "gripper", "images/scene"}
    assert config["obs_spec"]["images/scene"]["shape"] == [84, 84, 3]
    assert result["steps"] == 48
    rows = (tmp_path / "progress.csv").read_text().splitlines()
    header = rows[0].split(",")
    losses = [float(r.split(",")[header.index("critic_loss")]) for r in rows[1:] if r.split(",")[header.index("critic_loss")]]
    assert losses and all(np.isfinite(losses))  # updates ran on image batches
    other = evaluate_checkpoint(result["checkpoint"], OTHER[sim], 1, seed=7)
    assert np.isfinite(other["mean_return"])


def test_diffusion_from_images_trains_on_each_sim_and_acts_on_the_other(tmp_path):
    from robotlearn.policies.diffusion.policy import load_diffusion

    steps = {}
    for sim in ("mujoco", "pybullet"):
        data = tmp_path / f"demos-{sim}"
        assert main(["record", "--env", "ArmPickPlace-v0", "--backend", sim, "--device", "scripted",
                     "--cameras", "scene,wrist", "--episodes", "1", "--out", str(data), "--realtime", "off",
                     "max_episode_steps=12"]) == 0
        out = tmp_path / f"policy-{sim}"
        assert main(["train", "diffusion", "--dataset", str(data), "--config", "diffusion_images", "--out", str(out),
                     "--steps", "3", "train.batch_size=4", "down_dims=[16,32]", "image_width=8",
                     "image_feature_dim=8", "train.log_every=1"]) == 0
        agent = load_diffusion(out)
        assert sorted(agent.model.image_keys) == ["images/scene", "images/wrist"]
        assert not {"cube_pos", "cube_quat", "goal_pos"} & set(agent.model.low_keys)
        env = gym.make("robotlearn/ArmPickPlace-v0", backend=OTHER[sim], cameras=("scene", "wrist"))
        try:
            obs, _ = env.reset(seed=3)
            agent.reset()
            for _ in range(3):
                action = agent.act(obs)
                assert env.action_space.contains(np.asarray(action, np.float32))
                obs, *_ = env.step(action)
            steps[sim] = True
        finally:
            env.close()
    assert steps == {"mujoco": True, "pybullet": True}
