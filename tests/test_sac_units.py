"""SAC building blocks: replay, normalizer, update step, checkpoint I/O (no pickle, clear errors)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from robotlearn.data.replay import SOURCE_IDS, ReplayBuffer, symmetric_sample
from robotlearn.policies import CheckpointError, load_policy
from robotlearn.policies.checkpoint import prefixed, save_checkpoint
from robotlearn.policies.nets import ConvEncoder, EnsembleMLP, random_shift
from robotlearn.policies.normalizer import RunningNormalizer
from robotlearn.policies.sac.agent import SACAgent, SACPolicy, update
from robotlearn.policies.sac.config import SACConfig

torch.set_num_threads(1)

SPEC = {"joint_pos": {"shape": [3], "dtype": "float32"}, "goal_pos": {"shape": [2], "dtype": "float32"}}
SHAPES = {"joint_pos": ((3,), np.float32), "goal_pos": ((2,), np.float32)}
LOW, HIGH = np.full(2, -2.0, np.float32), np.full(2, 2.0, np.float32)


def small_cfg(**kw) -> SACConfig:
    return SACConfig(hidden=[32, 32], batch_size=64, **kw)


def batch_of(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    obs = {k: rng.standard_normal((n, *s)).astype(np.float32) for k, (s, _) in SHAPES.items()}
    nxt = {k: rng.standard_normal((n, *s)).astype(np.float32) for k, (s, _) in SHAPES.items()}
    return obs, nxt


def test_replay_ring_sampling_and_state_roundtrip():
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(10, SHAPES, 2)
    for i in range(4):  # 12 transitions into capacity 10 -> wraps
        obs, nxt = batch_of(3, rng)
        buf.add(obs, np.full((3, 2), i, np.float32), np.full(3, i), nxt, np.zeros(3), "human" if i == 3 else "policy")
    assert len(buf) == 10 and buf.count("human") == 3
    state = buf.state_dict()
    assert state["action"][-1, 0] == 3 and state["action"][0, 0] == 0  # insertion order, oldest first
    other = ReplayBuffer(10, SHAPES, 2)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.state_dict()["obs/joint_pos"], state["obs/joint_pos"])
    with pytest.raises(ValueError, match="unknown transition source"):
        buf.add(*batch_of(1, rng)[:1], np.zeros((1, 2)), np.zeros(1), batch_of(1, rng)[1], np.zeros(1), "robot")


def test_symmetric_sampling_takes_half_from_demos():
    rng = np.random.default_rng(0)
    online, demos = ReplayBuffer(100, SHAPES, 2), ReplayBuffer(100, SHAPES, 2)
    online.add(*batch_of(50, rng)[:1], np.zeros((50, 2)), np.zeros(50), batch_of(50, rng)[1], np.zeros(50))
    demos.add(*batch_of(20, rng)[:1], np.zeros((20, 2)), np.zeros(20), batch_of(20, rng)[1], np.zeros(20), "demo")
    batch = symmetric_sample(online, demos, 64, rng)
    assert batch["action"].shape == (64, 2)
    assert (batch["source"] == SOURCE_IDS["demo"]).sum() == 32


def test_running_normalizer_matches_numpy():
    rng = np.random.default_rng(1)
    data = rng.normal(3.0, 2.0, (1000, 4)).astype(np.float32)
    norm = RunningNormalizer(4)
    for chunk in np.array_split(data, 7):
        norm.update(torch.from_numpy(chunk))
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0), rtol=1e-4)
    np.testing.assert_allclose(norm.var.numpy(), data.var(0), rtol=1e-3)


def test_ensemble_mlp_members_are_independent_and_shift_keeps_shape():
    net = EnsembleMLP(3, 4, [8], 1)
    x = torch.randn(5, 4)
    y = net(x)
    assert y.shape == (3, 5, 1) and not torch.allclose(y[0], y[1])
    img = torch.rand(2, 3, 16, 16)
    assert random_shift(img, 2).shape == img.shape
    enc = ConvEncoder(32, 32, features=16)
    assert enc(torch.randint(0, 255, (2, 32, 32, 3), dtype=torch.uint8), augment=True).shape == (2, 16)


def make_batch(rng, n=64, a_dim=2):
    obs, nxt = batch_of(n, rng)
    batch = {f"obs/{k}": v for k, v in obs.items()} | {f"next_obs/{k}": v for k, v in nxt.items()}
    batch.update(action=rng.uniform(-1, 1, (n, a_dim)).astype(np.float32),
                 reward=obs["goal_pos"][:, 0].copy(), terminated=np.zeros(n, np.float32))
    return batch


def test_update_fits_critic_and_tunes_temperature():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    agent = SACAgent(small_cfg(gamma=0.0, critic_lr=3e-3), SPEC, LOW, HIGH)
    batch = make_batch(rng)
    first = update(agent, batch)
    for _ in range(60):
        last = update(agent, batch)
    assert last["critic_loss"] < 0.2 * first["critic_loss"]  # gamma=0: Q regresses the reward
    assert last["alpha"] < first["alpha"]  # entropy starts above target -> temperature drops


def test_image_observations_train_and_act():
    spec = {**SPEC, "images/wrist": {"shape": [24, 24, 3], "dtype": "uint8"}}
    agent = SACAgent(small_cfg(image_features=8), spec, LOW, HIGH)
    rng = np.random.default_rng(0)
    batch = make_batch(rng, n=16)
    for prefix in ("obs", "next_obs"):
        batch[f"{prefix}/images/wrist"] = rng.integers(0, 255, (16, 24, 24, 3), dtype=np.uint8)
    before = [p.clone() for p in agent.policy.convs.parameters()]
    update(agent, batch)
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.policy.convs.parameters(), strict=True))
    obs = {k: batch[f"obs/{k}"][0] for k in spec}
    action = agent.policy.act(obs)
    assert action.shape == (2,) and np.all(np.abs(action) <= 2.0)


def save_policy(tmp_path, agent: SACAgent, cfg: SACConfig):
    config = {"algo": "sac", "algo_config": cfg.model_dump(), "obs_spec": SPEC, "action_low": LOW.tolist(),
              "action_high": HIGH.tolist(), "env": {"id": "x"}}
    return save_checkpoint(tmp_path / "ckpt", config, {"model": prefixed("policy", agent.policy.state_dict())})


def test_checkpoint_roundtrip_and_no_pickle(tmp_path):
    cfg = small_cfg()
    agent = SACAgent(cfg, SPEC, LOW, HIGH)
    agent.policy.norm.update(torch.randn(100, 5) * 3)
    ckpt = save_policy(tmp_path, agent, cfg)
    raw = (ckpt / "model.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    assert json.loads(raw[8:8 + header_len])  # a safetensors JSON header, not a pickle stream
    assert not any(p.suffix in (".pt", ".pkl", ".pth") for p in ckpt.iterdir())
    policy = load_policy(ckpt)
    assert isinstance(policy, SACPolicy)
    obs = {"joint_pos": np.array([0.1, -0.2, 0.3], np.float32), "goal_pos": np.array([1.0, 2.0], np.float32)}
    np.testing.assert_allclose(policy.act(obs), agent.policy.act(obs), atol=1e-6)


def test_corrupted_and_mismatched_checkpoints_raise_clear_errors(tmp_path):
    cfg = small_cfg()
    ckpt = save_policy(tmp_path, SACAgent(cfg, SPEC, LOW, HIGH), cfg)
    model = ckpt / "model.safetensors"
    good = model.read_bytes()

    # Both damages are caught by the recorded sha256 (safetensors alone would reject the truncated file with
    # its own error, and would load the flipped byte as a silently different weight).
    flipped = bytearray(good)
    flipped[-1] ^= 0x01  # last byte of the tensor data; the header stays valid
    for damaged in (good[: len(good) // 2], bytes(flipped)):
        model.write_bytes(damaged)
        with pytest.raises(CheckpointError, match=r"corrupted \(sha256 does not match config.json\)"):
            load_policy(ckpt)
    model.write_bytes(good)

    config_path = ckpt / "config.json"
    config = json.loads(config_path.read_text())
    config["algo_config"]["hidden"] = [64, 64]  # a config that does not match the stored weights
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shape"):
        load_policy(ckpt)

    config["files"]["model.safetensors"] = "0" * 64  # checksum mismatch must not reach the loader
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="sha256"):
        load_policy(ckpt)

    config_path.write_text("{not json")
    with pytest.raises(CheckpointError, match="invalid JSON"):
        load_policy(ckpt)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_policy(tmp_path / "nope")
    config_path.write_text(json.dumps({**config, "algo": "ppo"}))
    with pytest.raises(CheckpointError, match="unknown algo"):
        load_policy(ckpt)
