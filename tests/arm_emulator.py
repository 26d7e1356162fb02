"""`robotlearn emulate arm` as a user starts it, for the tests that drive it through the production driver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import gymnasium as gym

import robotlearn  # noqa: F401 - registers the envs
from robotlearn.hardware.scene_oracle import read_emulator_info
from robotlearn.teleop.scripted import PickPlaceExpert

REPO = Path(__file__).resolve().parents[1]


class Emulator:
    """`robotlearn emulate arm` in a child process; stopped (SIGTERM) and reaped on exit."""

    def __init__(self, link: Path, *args: str):
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        self.link = link
        self._terminated = False
        self.proc = subprocess.Popen([sys.executable, "-m", "robotlearn.cli.main", "emulate", "arm",
                                      "--link", str(link), *args], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        try:
            self.info = read_emulator_info(link, timeout_s=30.0)
        except FileNotFoundError:
            self.stop()
            raise

    def terminate(self) -> None:
        """SIGTERM once: a second one could land while the interpreter is finalizing (default action)."""
        if self.proc.poll() is None and not self._terminated:
            self._terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> str:
        self.terminate()
        out, _ = self.proc.communicate(timeout=10)
        return out


def make_real(task: str, link: Path, **kw):
    env = gym.make(f"robotlearn/{task}", backend="real", port=str(link), **kw)
    assert env.spec.nondeterministic  # a robot cannot replay an episode: the env says so itself
    return env


def success_rate(env, seeds, max_steps: int = 60) -> float:
    wins = 0
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        expert = PickPlaceExpert(env)
        expert.reset(obs)
        for _ in range(max_steps):
            obs, _, _, _, info = env.step(expert.act(obs))
            if info["is_success"]:
                wins += 1
                break
    return wins / len(seeds)
