"""Excitation: joint trajectories that make the physical parameters visible, within the robot's limits.

* **random**: a multisine per arm joint (harmonics of one period, random frequencies in a band and random
  phases, amplitudes kept inside the joint limits and the velocity limit), faded in from rest. A
  multisine is periodic, so the information one period carries is representative of any multiple of it.
* **active**: among `candidates` random designs (different centre poses, bands, amplitudes, per-joint
  mixes), the safe one whose Fisher information leaves the worst-determined parameter best determined
  (active.py), computed from finite-difference sensitivities of the simulated trajectory over one period
  (as ASID does, with a discrete design space instead of a policy gradient: a dozen candidates cost a few
  dozen short sims and need no learning; each stays inside the joint limits by construction, and one that
  would load a servo past a share of its effort limit in the nominal sim is not run).

`ExcitationSource` turns a target trajectory into ``joint_delta`` actions for `Rollout`, so collection
runs through the env and the production driver like every other episode.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from robotlearn.core.spec import RobotSpec
from robotlearn.rollout.runner import ActionSource

SETTLE_S = 1.0      # hold the start pose (or move to a candidate's centre and hold) first: the loss skips it
PERIOD_S = 5.0      # multisine period
CENTRE_SPREAD = 0.5  # rad: how far an active candidate's centre pose may lie from the start pose
CENTRE_ROOM = 0.3    # rad: a moved centre keeps this much room to each joint limit (or stays where it was)
MOVE_SHARE = 0.6     # of the settle: the move to a candidate's centre (0.5 rad peaks at 1.3 rad/s), then a hold


@dataclass(frozen=True)
class Multisine:
    """q(t) = center + fade(t) * sum_i amp[j, i] sin(2 pi freq[j, i] t + phase[j, i]) per arm joint."""

    center: np.ndarray   # (n_arm,)
    amp: np.ndarray      # (n_arm, harmonics) rad
    freq: np.ndarray     # (n_arm, harmonics) Hz
    phase: np.ndarray    # (n_arm, harmonics)
    #: (n_arm,) where the arm starts when the centre lies elsewhere: the settle moves it there smoothly
    start: np.ndarray | None = None

    def __call__(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        base = np.broadcast_to(self.center, (len(t), len(self.center)))
        if self.start is not None:  # half a cosine over the settle's first MOVE_SHARE, then hold still
            ramp = 0.5 - 0.5 * np.cos(np.pi * np.clip(t / (MOVE_SHARE * SETTLE_S), 0.0, 1.0))
            base = self.start[None] + ramp[:, None] * (self.center - self.start)[None]
        active = np.clip(t - SETTLE_S, 0.0, None)
        fade = np.clip(active / 1.0, 0.0, 1.0)[:, None]
        waves = np.sin(2 * np.pi * self.freq[None] * active[:, None, None] + self.phase[None]) * self.amp[None]
        return base + fade * waves.sum(axis=2)


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
    freq = np.stack([rng.choice(np.arange(k_low, k_high + 1), size=harmonics, replace=k_high - k_low + 1 < harmonics)
                     for _ in range(n_arm)]) * base  # distinct harmonics where the band holds enough
    raw = rng.uniform(0.5, 1.0, (n_arm, harmonics))
    total = np.minimum(amplitude * weights, room)                 # peak position excursion per joint
    amp = raw / raw.sum(axis=1, keepdims=True) * total[:, None]
    peak_vel = (amp * 2 * np.pi * freq).sum(axis=1)
    amp *= np.minimum(1.0, 0.6 * vmax / np.maximum(peak_vel, 1e-9))[:, None]
    return Multisine(np.asarray(center[:n_arm], dtype=np.float64), amp, freq,
                     rng.uniform(0, 2 * np.pi, (n_arm, harmonics)))


def candidate_designs(spec: RobotSpec, center: np.ndarray, n_arm: int, rng: np.random.Generator,
                      count: int) -> list[Multisine]:
    """The active design space: centre poses up to CENTRE_SPREAD from `center` (gravity loads each link
    differently in each pose: the upper arm's and the forearm's masses are told apart only by how the
    load moves between the shoulder and the elbow), bands from slow (gravity, friction) to fast (inertia,
    gains, latency), amplitudes from gentle to twice the random design's, random emphasis on some joints.
    Which of them is safe to run is the nominal sim's to say (active.py)."""
    lower, upper = spec.lower[:n_arm], spec.upper[:n_arm]
    designs = []
    for _ in range(count):
        pose = np.asarray(center, dtype=np.float64).copy()
        offset = rng.uniform(-CENTRE_SPREAD, CENTRE_SPREAD, n_arm)
        pose[:n_arm] = np.clip(pose[:n_arm] + offset, np.minimum(pose[:n_arm], lower + CENTRE_ROOM),
                               np.maximum(pose[:n_arm], upper - CENTRE_ROOM))
        low = rng.uniform(0.2, 0.6)
        band = (low, low + rng.uniform(0.8, 1.6))
        design = random_multisine(spec, pose, rng, n_arm, band, amplitude=rng.uniform(0.35, 0.7),
                                  joint_weights=rng.uniform(0.5, 1.0, n_arm))
        designs.append(replace(design, start=np.asarray(center[:n_arm], dtype=np.float64)))
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
