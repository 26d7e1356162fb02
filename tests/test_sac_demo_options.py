"""SAC's demo options (configs/algos/sac_quad_hover.yaml): behaviour cloning in the actor loss and before
training, and observation statistics taken from the demos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robotlearn.data.replay import SOURCE_IDS, ReplayBuffer
from robotlearn.policies.sac.agent import SACAgent, demo_bc_loss, pretrain_actor, update
from robotlearn.policies.sac.config import SACConfig
from robotlearn.policies.sac.train import check_demo_options

torch.set_num_threads(1)

SPEC = {"x": {"shape": [3], "dtype": "float32"}}
SHAPES = {"x": ((3,), np.float32)}
LOW, HIGH = -np.ones(2, np.float32), np.ones(2, np.float32)


def expert(x: np.ndarray) -> np.ndarray:
    """A smooth demonstrator the actor can fit: action = tanh of a linear map of the state."""
    return np.tanh(x @ np.array([[0.8, -0.3], [0.2, 0.5], [-0.4, 0.1]], np.float32)).astype(np.float32)


def demo_buffer(n: int, rng: np.random.Generator, source: str = "demo") -> ReplayBuffer:
    buf = ReplayBuffer(n, SHAPES, 2)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    buf.add({"x": x}, expert(x), np.zeros(n), {"x": x}, np.zeros(n), source)
    return buf


def test_bc_loss_counts_only_recorded_rows():
    torch.manual_seed(0)
    agent = SACAgent(SACConfig(hidden=[16, 16]), SPEC, LOW, HIGH)
    feats = torch.randn(4, 3)
    action = torch.zeros(4, 2)
    mean = torch.tanh(agent.policy.actor(feats).chunk(2, -1)[0]).detach()
    source = np.array([SOURCE_IDS["policy"], SOURCE_IDS["demo"], SOURCE_IDS["human"], SOURCE_IDS["policy"]])
    loss = demo_bc_loss(agent.policy, feats, action, source)
    assert loss.item() == pytest.approx(mean[1:3].square().sum(-1).mean().item(), rel=1e-5)
    only_policy = np.full(4, SOURCE_IDS["policy"])
    assert demo_bc_loss(agent.policy, feats, action, only_policy).item() == 0.0


def test_pretraining_clones_the_demonstrator():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    agent = SACAgent(SACConfig(hidden=[32, 32], actor_lr=3e-3), SPEC, LOW, HIGH)
    demos = demo_buffer(512, rng)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    before = np.abs(agent.policy.act_batch({"x": x}, deterministic=True) - expert(x)).mean()
    pretrain_actor(agent, demos, 300, 64, rng)
    after = np.abs(agent.policy.act_batch({"x": x}, deterministic=True) - expert(x)).mean()
    assert after < 0.05 < before, (before, after)


def test_bc_weight_keeps_the_actor_on_the_demos():
    """With a critic that says nothing (zero reward everywhere), only the BC term moves the actor's mean."""
    results = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        rng = np.random.default_rng(1)
        agent = SACAgent(SACConfig(hidden=[32, 32], actor_lr=3e-3, bc_weight=weight, batch_size=64), SPEC, LOW, HIGH)
        demos = demo_buffer(256, rng)
        for _ in range(200):
            batch = demos.sample(64, rng)
            batch["reward"] = batch["reward"] - 10.0  # a non-zero |Q| so the TD3+BC scale is not zero
            update(agent, batch)
        x = rng.standard_normal((64, 3)).astype(np.float32)
        results[weight] = np.abs(agent.policy.act_batch({"x": x}, deterministic=True) - expert(x)).mean()
    assert results[1.0] < 0.2 and results[1.0] < results[0.0] / 3, results


def test_obs_stats_from_demos_need_demos():
    with pytest.raises(ValueError, match="obs_stats=demos"):
        check_demo_options(SACConfig(obs_stats="demos"))
    with pytest.raises(ValueError, match="bc_weight"):
        check_demo_options(SACConfig(bc_weight=1.0))
    check_demo_options(SACConfig(obs_stats="demos", bc_weight=1.0, demos="some/dataset"))
