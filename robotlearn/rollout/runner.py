"""`Rollout`: the one episode loop. Every command that runs episodes (sim, record, teleop, eval, deploy,
quickstart, SAC collection, and later RaC, sysid, ROS 2 and Ray actors) is this loop with a different
action source and different sinks.

* An **action source** answers ``act(obs) -> (action, source_label)``: a policy, a teleop device, the
  HIL arbiter, a scripted expert (rollout/sources.py). Labels ("policy", "human", "demo", ...) travel
  with every step into the sinks and the dataset.
* **Sinks** see every episode start, every transition and every episode end: the dataset recorder, a
  replay buffer, a video writer (rollout/sinks.py).
* **Pacing**: with ``realtime`` the loop holds ``control_hz`` on the wall clock. On a real backend
  ``env.step`` itself returns at the robot's next control tick, so the loop does not sleep there (a
  second clock would fight the robot's: the MAVLink backend ticks on its state stream's arrivals, and a
  loop sleeping to its own grid first decided the phase instead); it only counts overruns. In sim
  pacing is what lets a person teleoperate. ``realtime=None`` (default) turns it on for backends that
  are not deterministic (hardware) and for human sources.
* **Section timing**, after ros2_control's read/update/write cycle and LeRobot's loop timer: each step
  is split into ``act`` (the source), ``send`` / ``wait`` / ``observe`` (from RobotEnv's
  ``last_step_timing``) and ``record`` (the sinks). An overrun is a missed control tick (a step that
  started more than 1.5 periods after the previous one); it is counted against the section that took
  the largest share of that step, so a user sees *which part* overran.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

SECTIONS = ("act", "send", "wait", "observe", "record")


class ActionSource:
    """Base for action sources; subclasses implement `act`. Optional hooks have no-op defaults."""

    #: the label steps get when `act` does not decide otherwise
    label: str = "policy"
    #: a person is in the loop (pacing on by default, teleop events honoured)
    human: bool = False

    def reset(self, obs: dict[str, np.ndarray]) -> None:  # noqa: B027 - optional hook
        """Start of an episode (the first observation)."""

    def act(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:
        raise NotImplementedError

    def pop_events(self) -> set[str]:
        """Operator events since the last call: "save", "discard" (end the episode), "quit"."""
        return set()

    def end_episode(self, stats: EpisodeStats) -> None:  # noqa: B027 - optional hook
        """End of an episode."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release devices."""


@dataclass
class Transition:
    obs: dict[str, np.ndarray]
    action: np.ndarray
    source: str
    reward: float
    next_obs: dict[str, np.ndarray]
    terminated: bool
    truncated: bool
    info: dict[str, Any]

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


class Sink:
    """Base for sinks; every hook is optional."""

    def start_episode(self, obs: dict[str, np.ndarray], info: dict[str, Any], seed: int | None) -> None:  # noqa: B027
        """An episode starts with `obs`."""

    def add(self, transition: Transition) -> None:  # noqa: B027
        """One step."""

    def end_episode(self, stats: EpisodeStats) -> None:  # noqa: B027
        """The episode is over (`stats.outcome` says how)."""

    def close(self) -> None:  # noqa: B027
        """No more episodes."""


@dataclass
class EpisodeStats:
    """What one episode did. ``outcome``: "done" (terminated/truncated), "save" / "discard" (an operator
    ended it), "quit" (an operator stopped the run)."""

    index: int
    seed: int | None
    steps: int = 0
    episode_return: float = 0.0
    success: bool = False
    outcome: str = "done"
    sources: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    timing_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # section -> p50/p99/max
    overruns: int = 0
    overrun_sections: Counter = field(default_factory=Counter)
    loop_stats: dict[str, Any] | None = None  # the backend's last info["loop_stats"] (real robots)
    kept: bool = True  # counted by Rollout.run (its `keep` predicate)

    def summary(self) -> dict[str, Any]:
        return {"index": self.index, "seed": self.seed, "steps": self.steps, "return": self.episode_return,
                "success": self.success, "outcome": self.outcome, "sources": dict(self.sources),
                "seconds": round(self.seconds, 3), "timing_ms": self.timing_ms, "overruns": self.overruns,
                "overrun_sections": dict(self.overrun_sections)}


@dataclass
class RolloutResult:
    episodes: list[EpisodeStats] = field(default_factory=list)

    @property
    def kept(self) -> list[EpisodeStats]:
        return [e for e in self.episodes if e.kept]

    @property
    def success_rate(self) -> float:
        kept = self.kept
        return float(np.mean([e.success for e in kept])) if kept else 0.0

    @property
    def mean_return(self) -> float:
        kept = self.kept
        return float(np.mean([e.episode_return for e in kept])) if kept else 0.0

    def source_fraction(self, label: str) -> float:
        total = sum(sum(e.sources.values()) for e in self.episodes)
        return sum(e.sources[label] for e in self.episodes) / max(total, 1)

    def timing_report(self) -> str:
        """One line: per-section p50/p99 step time over all episodes' medians, and what overran."""
        sections = []
        for name in SECTIONS:
            rows = [e.timing_ms[name] for e in self.episodes if name in e.timing_ms]
            if rows:
                sections.append(f"{name} {np.median([r['p50'] for r in rows]):.1f}/{max(r['p99'] for r in rows):.1f}")
        overruns = Counter()
        for e in self.episodes:
            overruns.update(e.overrun_sections)
        missed = sum(e.overruns for e in self.episodes)
        why = f" ({', '.join(f'{k} {v}' for k, v in overruns.most_common())})" if overruns else ""
        return f"step ms p50/p99: {', '.join(sections)}; missed ticks: {missed}{why}"

    def summary(self) -> dict[str, float]:
        kept = self.kept
        return {"episodes": len(kept), "success_rate": self.success_rate, "mean_return": self.mean_return,
                "mean_length": float(np.mean([e.steps for e in kept])) if kept else 0.0,
                "overruns": sum(e.overruns for e in self.episodes)}


def kept(stats: EpisodeStats) -> bool:
    """The default: episodes that ended on their own or that an operator saved count; discarded ones not."""
    return stats.outcome in ("done", "save")


class _SectionTimer:
    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {s: [] for s in SECTIONS}

    def add(self, section: str, seconds: float) -> None:
        self.samples[section].append(seconds)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for section, values in self.samples.items():
            if values:
                ms = np.asarray(values) * 1e3
                out[section] = {"p50": round(float(np.median(ms)), 3), "p99": round(float(np.percentile(ms, 99)), 3),
                                "max": round(float(ms.max()), 3)}
        return out


class Rollout:
    """Runs episodes of `env` with actions from `source` into `sinks` (see the module docstring)."""

    def __init__(self, env: gym.Env, source: ActionSource, sinks: Sequence[Sink] = (), realtime: bool | None = None,
                 max_steps: int | None = None):
        self.env, self.source, self.sinks = env, source, list(sinks)
        backend = getattr(env.unwrapped, "backend", None)
        hardware = backend is not None and not backend.deterministic
        self.realtime = (hardware or source.human) if realtime is None else bool(realtime)
        self._sleeps = self.realtime and not hardware  # hardware paces in env.step (module doc)
        self.period = 1.0 / float(env.metadata.get("render_fps") or 10.0)
        self.max_steps = max_steps
        self._obs: dict[str, np.ndarray] | None = None
        self._stats: EpisodeStats | None = None
        self._timer = _SectionTimer()
        self._episodes = 0
        self._seed: int | None = None
        self._next_tick = 0.0
        self._t_episode = 0.0
        self._t_step = 0.0
        self._prev_sections: dict[str, float] = {}
        self.quit = False

    # ---- episode-level API ------------------------------------------------------------------------
    def run(self, episodes: int, seed: int | None = 0, progress: str | None = None,
            keep: Callable[[EpisodeStats], bool] = kept, max_attempts: int | None = None) -> RolloutResult:
        """Run until `episodes` episodes satisfy `keep` (default: ended on their own or saved by an operator),
        at most `max_attempts` episodes, or an operator quits. Attempt i is seeded seed+i.

        `progress` names a tqdm bar (with ETA); None runs silently.
        """
        from tqdm import tqdm

        if episodes <= 0:
            raise ValueError(f"episodes must be positive, got {episodes}")
        result = RolloutResult()
        bar = tqdm(total=episodes, desc=progress, unit="ep", disable=progress is None, dynamic_ncols=True, leave=False)
        try:
            while len(result.kept) < episodes and not self.quit:
                if max_attempts is not None and len(result.episodes) >= max_attempts:
                    break
                stats = self.run_episode(None if seed is None else seed + len(result.episodes))
                stats.kept = keep(stats)
                result.episodes.append(stats)
                if stats.kept:
                    bar.update(1)
                    bar.set_postfix(success=f"{result.success_rate:.0%}")
        finally:
            bar.close()
        return result

    def run_episode(self, seed: int | None = None) -> EpisodeStats:
        self.start_episode(seed)
        while True:
            transition = self.step()
            if transition is None or self._stats is None:
                return self._last_stats

    # ---- step-level API (SAC collection, ROS 2 nodes, Ray actors) -----------------------------------
    def start_episode(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """Reset the env and the source; sinks see the first observation."""
        if self._stats is not None:
            self._finish("discard")
        obs, info = self.env.reset(seed=seed)
        self.source.reset(obs)
        self.source.pop_events()  # events from before the episode (e.g. the key that started it) do not count
        self._obs, self._seed = obs, seed
        self._stats = EpisodeStats(index=self._episodes, seed=seed, success=bool(info.get("is_success", False)))
        self._timer = _SectionTimer()
        self._episodes += 1
        for sink in self.sinks:
            sink.start_episode(obs, info, seed)
        self._t_episode = self._next_tick = time.monotonic()
        return obs

    @property
    def obs(self) -> dict[str, np.ndarray] | None:
        """The observation the next step acts on (None between episodes)."""
        return self._obs

    def step(self) -> Transition | None:
        """One control step of the current episode (starting one if none runs). Returns the transition,
        or None when an operator ended the episode before acting ("save"/"discard"/"quit")."""
        if self._stats is None:
            self.start_episode(self._seed + 1 if self._seed is not None else None)
        stats, obs = self._stats, self._obs
        t0 = time.perf_counter()
        late = self.realtime and stats.steps > 0 and t0 - self._t_step > 1.5 * self.period
        self._t_step = t0
        action, label = self.source.act(obs)
        events = self.source.pop_events()
        if "quit" in events:
            self.quit = True
            self._finish("quit")
            return None
        t1 = time.perf_counter()
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        t2 = time.perf_counter()
        truncated = bool(truncated) or (self.max_steps is not None and stats.steps + 1 >= self.max_steps)
        transition = Transition(obs, np.asarray(action), label, float(reward), next_obs, bool(terminated),
                                truncated, info)
        for sink in self.sinks:
            sink.add(transition)
        t3 = time.perf_counter()
        self._account(stats, transition, t1 - t0, t2 - t1, t3 - t2, late)
        self._obs = next_obs
        if "discard" in events or "save" in events:
            self._finish("discard" if "discard" in events else "save")
        elif transition.done:
            self._finish("done")
        elif self._sleeps:
            self._pace()
        return transition

    # ---- internals -----------------------------------------------------------------------------------
    def _account(self, stats: EpisodeStats, tr: Transition, act_s: float, step_s: float, record_s: float,
                 late: bool) -> None:
        stats.steps += 1
        stats.episode_return += tr.reward
        stats.sources[tr.source] += 1
        stats.success = bool(tr.info.get("is_success", stats.success))
        if "loop_stats" in tr.info:
            stats.loop_stats = tr.info["loop_stats"]
        env_timing = getattr(self.env.unwrapped, "last_step_timing", None)
        sections = {"act": act_s, "record": record_s}
        if env_timing:
            sections.update(send=env_timing["send"], wait=env_timing["wait"], observe=env_timing["observe"])
        else:
            sections["wait"] = step_s
        for name, seconds in sections.items():
            self._timer.add(name, seconds)
        if late and self._prev_sections:
            # the previous step ran long; its largest section is the one that overran
            stats.overruns += 1
            stats.overrun_sections[max(self._prev_sections, key=self._prev_sections.get)] += 1
        self._prev_sections = sections

    def _pace(self) -> None:
        self._next_tick += self.period
        delay = self._next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -self.period:
            self._next_tick = time.monotonic()  # fell behind by more than a tick: do not try to catch up

    def _finish(self, outcome: str) -> None:
        stats = self._stats
        stats.outcome = outcome
        stats.seconds = time.monotonic() - self._t_episode
        stats.timing_ms = self._timer.summary()
        self._stats, self._obs, self._last_stats = None, None, stats
        for sink in self.sinks:
            sink.end_episode(stats)
        self.source.end_episode(stats)

    def close(self) -> None:
        """End a running episode (discarded), close the sinks and the source (not the env)."""
        try:
            if self._stats is not None:
                self._finish("discard")
        finally:
            for sink in self.sinks:
                sink.close()
            self.source.close()
