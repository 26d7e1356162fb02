"""`robotlearn train diffusion --nproc 2`: torchrun with 2 processes (DDP, gloo) against one process.

Two real runs through the CLI: the gradient check (DDP's averaged gradients of the two half batches equal
the single-process gradient of the whole batch, on every rank), and 3 training steps whose saved weights
and losses equal a single-process run at the same global batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from test_diffusion import _cfg, _toy_dataset

from robotlearn.policies.checkpoint import load_tensors
from robotlearn.policies.diffusion.train import train

torch.set_num_threads(1)
STEPS = 3
OVERRIDES = ["down_dims=[16,32]", "step_embed_dim=16", "groups=4", "train.batch_size=16", "train.lr=2e-3",
             "train.warmup_steps=1", "train.log_every=1", "obs_keys=[pos,goal_pos]"]


def robotlearn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robotlearn.cli.main", "train", "diffusion", *args], text=True,
                          capture_output=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return _toy_dataset(tmp_path_factory.mktemp("toy") / "ds", episodes=4, steps=24)


def test_ddp_gradients_equal_single_process_on_a_fixed_batch(dataset):
    run = robotlearn("--nproc", "2", "--master", "127.0.0.1:29517", "--dataset", str(dataset), "--config",
                     "diffusion", "--check-gradients", *OVERRIDES)
    assert run.returncode == 0, run.stdout[-1500:] + run.stderr[-3000:]
    checks = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert sorted(c["rank"] for c in checks) == [0, 1] and all(c["world"] == 2 for c in checks)
    for c in checks:
        assert c["max_abs_grad"] > 1e-3  # a real gradient ...
        assert c["max_abs_diff"] <= 1e-5 * c["max_abs_grad"], c  # ... equal to one process's on the whole batch


def test_two_processes_train_like_one_at_equal_global_batch(dataset, tmp_path):
    out = tmp_path / "ddp"
    run = robotlearn("--nproc", "2", "--master", "127.0.0.1:29518", "--dataset", str(dataset), "--steps", str(STEPS),
                     "--out", str(out), *OVERRIDES)
    assert run.returncode == 0, run.stdout[-1500:] + run.stderr[-3000:]
    assert "2 processes" in run.stdout
    cfg = _cfg(obs_keys=["pos", "goal_pos"],
               train={"steps": STEPS, "batch_size": 16, "lr": 2e-3, "warmup_steps": 1, "log_every": 1})
    _, losses = train(cfg, dataset, tmp_path / "single", log=lambda s: None)
    ddp_losses = [float(line.split()[3]) for line in run.stdout.splitlines() if line.startswith("step ")]
    assert ddp_losses == pytest.approx(losses, rel=1e-3)  # the log prints 4 significant digits
    ddp_weights, single = load_tensors(out, "model"), load_tensors(tmp_path / "single", "model")
    assert ddp_weights.keys() == single.keys()
    for key, value in single.items():
        torch.testing.assert_close(ddp_weights[key], value, rtol=1e-4, atol=1e-5, msg=key)
