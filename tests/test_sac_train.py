"""`robotlearn train sac`: CLI end to end, SIGKILL + --resume continues from the last checkpoint, HIL."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import torch
from safetensors.numpy import load_file

from robotlearn.cli.main import main

torch.set_num_threads(1)

TINY = ["learning_starts=32", "hidden=[16,16]", "batch_size=16", "eval_every=0", "eval_episodes=1", "log_every=50"]


def checkpoint_step(run_dir) -> int:
    try:
        return json.loads((run_dir / "checkpoint" / "config.json").read_text())["progress"]["step"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return -1


def test_sigkill_then_resume_continues_from_last_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "robotlearn.cli.main", "train", "sac", "--env", "Pendulum-v1", "--out", str(run_dir),
           "--steps", "1000000", "--no-progress", "checkpoint_every=100", *TINY]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 90
        while checkpoint_step(run_dir) < 200:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint at step >= 200 within 90 s"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = checkpoint_step(run_dir)
    assert killed_at >= 200 and killed_at % 100 == 0
    before = load_file(str(run_dir / "checkpoint" / "model.safetensors"))

    target = killed_at + 100
    assert main(["train", "sac", "--out", str(run_dir), "--resume", "--steps", str(target), "--no-progress"]) == 0

    assert checkpoint_step(run_dir) == target
    replay = load_file(str(run_dir / "checkpoint" / "replay.safetensors"))
    assert replay["online/action"].shape[0] == target  # the buffer was restored, not refilled from scratch
    after = load_file(str(run_dir / "checkpoint" / "model.safetensors"))
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    with open(run_dir / "progress.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    resumed = [s for s in steps if s > killed_at]
    assert resumed and resumed[-1] == target and min(resumed) > killed_at


def test_resume_without_checkpoint_and_bad_override_fail_clearly(tmp_path, capsys):
    assert main(["train", "sac", "--env", "Pendulum-v1", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "sac", "--env", "Pendulum-v1", "--out", str(tmp_path / "x"), "utd=zero"]) == 2
    err = capsys.readouterr().err
    assert "utd" in err and len(err.strip().splitlines()) == 1


def test_training_stops_at_the_first_evaluation_that_meets_the_goal(tmp_path):
    """stop_return / stop_success end a time-to-threshold run there, with a checkpoint of that step."""
    from robotlearn.policies.sac.config import SACConfig
    from robotlearn.policies.sac.train import train

    cfg = SACConfig(env="Pendulum-v1", backend=None, total_steps=1000, learning_starts=32, hidden=[16, 16],
                    batch_size=16, eval_every=100, eval_episodes=1, checkpoint_every=0, save_replay=False,
                    stop_return=-1e9)  # any return meets it: the first evaluation (step 100) ends the run
    result = train(cfg, tmp_path, progress_bar=False)
    assert result["steps"] == 100 and checkpoint_step(tmp_path) == 100
    cfg.stop_return, cfg.total_steps = 1e9, 300  # never met: the run goes to total_steps
    assert train(cfg, tmp_path / "b", progress_bar=False)["steps"] == 300
