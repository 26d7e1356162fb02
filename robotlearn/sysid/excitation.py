"""Excitation: joint trajectories that make the physical parameters visible, within the robot's limits.

* **random**: a multisine per arm joint (harmonics of one period, random frequencies in a band and random
  phases, amplitudes kept inside the joint limits and the velocity limit), faded in from rest. A
  multisine is periodic, so the information one period carries is representative of any multiple of it.
* **active**: among `candidates` random designs (different bands, per-joint amplitude mixes, seeds), the
  one whose Fisher information about the parameters is largest (D-optimal: log det), computed from
  finite-difference sensitivities of the simulated trajectory over one period (as ASID does, with
  a discrete design space instead of a policy gradient: a dozen candidates cost a few dozen short sims
  and need no learning, and every candidate is safe by construction).

`ExcitationSource` turns a target trajectory into ``joint_delta`` actions for `Rollout`, so collection
runs through the env and the production driver like every other episode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robotlearn.core.spec import RobotSpec
from robotlearn.rollout.runner import ActionSource

SETTLE_S = 1.0      # hold the start pose first: the loss skips it (sim and robot settle from different states)
PERIOD_S = 5.0      # multisine period


@dataclass(frozen=True)
class Multisine:
    """q(t) = center + fade(t) * sum_i amp[j, i] sin(2 pi freq[j, i] t + phase[j, i]) per arm joint."""

    center: np.ndarray   # (n_arm,)
    amp: np.ndarray      # (n_arm, harmonics) rad
    freq: np.ndarray     # (n_arm, harmonics) Hz
    phase: np.ndarray    # (n_arm, harmonics)

    def __call__(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        active = np.clip(t - SETTLE_S, 0.0, None)
        fade = np.clip(active / 1.0, 0.0, 1.0)[:, None]
        waves = np.sin(2 * np.pi * self.freq[None] * active[:, None, None] + self.phase[None]) * self.amp[None]
        return self.center[None] + fade * waves.sum(axis=2)


def random_multisine(spec: RobotSpec, center: np.ndarray, rng: np.random.Generator, n_arm: int,
                     band_hz: tuple[float, float] = (0.2, 1.6), amplitude: float = 0.35, harmonics: int = 4,
                     joint_weights: np.ndarray | None = None) -> Multisine:
    """A random multisine around `center` that stays `margin` inside the limits and under 60 % of the
    joints' velocity limits."""
    lower, upper = spec.lower[:n_arm], spec.upper[:n_arm]
    vmax = np.array([j.max_velocity for j in spec.joints[:n_arm]])
    margin = 0.05
    room = np.maximum(0.0, np.minimum(center[:n_arm] - lower, upper - center[:n_arm]) - margin)
    weights = np.ones(n_arm) if joint_weights is None else np.asarray(joint_weights, dtype=np.float64)
    base = 1.0 / PERIOD_S
    k_low, k_high = max(1, int(np.ceil(band_hz[0] / base))), max(2, int(np.floor(band_hz[1] / base)))
    freq = np.stack([rng.choice(np.arange(k_low, k_high + 1), size=harmonics, replace=k_high - k_low + 1 >= harmonics)
                     for _ in range(n_arm)]) * base
    raw = rng.uniform(0.5, 1.0, (n_arm, harmonics))
    total = np.minimum(amplitude * weights, room)                 # peak position excursion per joint
    amp = raw / raw.sum(axis=1, keepdims=True) * total[:, None]
    peak_vel = (amp * 2 * np.pi * freq).sum(axis=1)
    amp *= np.minimum(1.0, 0.6 * vmax / np.maximum(peak_vel, 1e-9))[:, None]
    return Multisine(np.asarray(center[:n_arm], dtype=np.float64), amp, freq,
                     rng.uniform(0, 2 * np.pi, (n_arm, harmonics)))


def candidate_designs(spec: RobotSpec, center: np.ndarray, n_arm: int, rng: np.random.Generator,
                      count: int) -> list[Multisine]:
    """The active design space: bands from slow (gravity, friction) to fast (inertia, gains, latency),
    amplitudes from gentle to the safety bound, and random emphasis on some joints."""
    designs = []
    for _ in range(count):
        low = rng.uniform(0.2, 0.8)
        band = (low, low + rng.uniform(0.6, 2.2))
        weights = rng.uniform(0.3, 1.0, n_arm)
        designs.append(random_multisine(spec, center, rng, n_arm, band, amplitude=rng.uniform(0.2, 0.45),
                                        joint_weights=weights))
    return designs


class ExcitationSource(ActionSource):
    """Follows a target trajectory with ``joint_delta`` actions (gripper held open), labelled "sysid"."""

    label = "sysid"

    def __init__(self, trajectory: Multisine, control_hz: float, max_joint_delta: float, n_arm: int):
        self.trajectory, self.dt, self.scale, self.n_arm = trajectory, 1.0 / control_hz, max_joint_delta, n_arm
        self._k = 0
        self._target = trajectory.center.copy()

    def reset(self, obs: dict[str, np.ndarray]) -> None:
        self._k = 0
        self._target = np.asarray(obs["joint_pos"][: self.n_arm], dtype=np.float64).copy()

    def act(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:
        want = self.trajectory(np.array([(self._k + 1) * self.dt]))[0]
        delta = np.clip((want - self._target) / self.scale, -1.0, 1.0)
        self._target = self._target + delta * self.scale
        self._k += 1
        return np.concatenate([delta, [1.0]]).astype(np.float32), self.label
