"""`robotlearn sim` and `robotlearn deploy` reach a real (emulated) quadrotor over MAVLink with
`--backend-opt connection=...`, the same options model the arm uses for its port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

TIMEOUT = 180


def robotlearn(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robotlearn.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture()
def vehicle(tmp_path: Path):
    """`robotlearn emulate quadrotor` sending to a free UDP port; yields the driver's connection string."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "vehicle.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "robotlearn.cli.main", "emulate", "quadrotor", "--mavlink",
                                 f"udpout:127.0.0.1:{port}", "--duration", str(TIMEOUT)], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield f"udpin:127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        print(log.read_text()[-2000:])


FAST = ["params.init_pos_range=0.1", "params.init_vel_range=0.0", "params.init_tilt=0.0", "max_episode_steps=100"]


def test_sim_flies_the_emulated_vehicle_through_the_real_driver(vehicle):
    result = robotlearn("sim", "--env", "robotlearn/QuadHover-v0", "--backend", "real",
                        "--backend-opt", f"connection={vehicle}", "--episodes", "1", *FAST)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "real         100.0%" in result.stdout, result.stdout


def test_deploy_of_a_quadrotor_checkpoint_reaches_the_vehicle(vehicle, tmp_path):
    train = robotlearn("train", "sac", "--env", "robotlearn/QuadHover-v0", "--backend", "mujoco", "--steps", "60",
                       "--out", str(tmp_path / "run"), "--no-progress", "learning_starts=30", "hidden=[16,16]",
                       "batch_size=16", "eval_every=0", "eval_episodes=1", "checkpoint_every=0",
                       *(f"env_overrides={FAST}".replace(" ", ""),))
    assert train.returncode == 0, train.stderr[-2000:]
    result = robotlearn("deploy", "--checkpoint", str(tmp_path / "run" / "checkpoint"), "--backend", "real",
                        "--backend-opt", f"connection={vehicle}", "--episodes", "1",
                        "--record", str(tmp_path / "flight"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("real: success") and "over 1 episodes" in result.stdout, result.stdout
    info = robotlearn("dataset", "info", str(tmp_path / "flight"))
    assert info.returncode == 0 and "cf2x" in info.stdout, info.stdout  # the flight was recorded, robot named


def test_a_priority_out_of_range_is_one_line_and_exit_2():
    result = robotlearn("emulate", "quadrotor", "--priority", "120", timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "--priority must be 0" in lines[0], result.stderr
