"""The RaC loop: round-0 demos, rounds of collection with an operator, fine-tuning, evaluation.

Every episode of every phase is the one Rollout (robotlearn/rollout) with a different action source —
the scripted expert labelled ``demo``, `RaCSource` (policy + operator), or the policy alone — and
`RaCRecorderSink` into one dataset per run, so rounds accumulate in one place and `training_demos`
(correction/labels.py) picks what trains. A run folder holds ``dataset/``, ``round-<k>/`` checkpoints
and ``rac.json`` (per-round success and operator seconds), which `robotlearn rac report` plots.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robotlearn.correction.labels import NO_INTERVENTION, training_demos
from robotlearn.correction.rac import RaCRecorderSink, RaCSource, rac_recorder
from robotlearn.correction.rewind import DemoStateDistribution, in_distribution_target
from robotlearn.rollout import EnvRecipe, PolicySource, Rollout
from robotlearn.rollout.runner import ActionSource, EpisodeStats

RESULTS = "rac.json"
TASK_TEXT = "stack cube B on cube A, then cube C on B"


class DemoSource(ActionSource):
    """The scripted expert as a full-demo operator (label ``demo``), with the labels RaCRecorderSink writes."""

    label = "demo"
    mode = "demo"

    def __init__(self, env):
        from robotlearn.teleop.scripted import make_expert

        self.task = env.unwrapped.task
        self.expert = make_expert(env)
        self.labels = {"intervention_id": NO_INTERVENTION, "subtask_id": 0}
        self.interventions = 0

    def reset(self, obs: dict[str, np.ndarray]) -> None:
        self.expert.reset(obs)

    def act(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:
        self.labels = {"intervention_id": NO_INTERVENTION, "subtask_id": int(self.task.subtask(obs))}
        return np.asarray(self.expert.act(obs), np.float32), self.label

    def termination(self, stats: EpisodeStats) -> str:
        return "success" if stats.success else "timeout"


def _successful(stats: EpisodeStats) -> bool:
    return stats.success


def collect_demos(env, recipe: EnvRecipe, dataset: str | Path, episodes: int, seed: int,
                  progress: str | None = "demos") -> float:
    """`episodes` successful scripted demos into `dataset`; returns their operator seconds."""
    source = DemoSource(env)
    sink = RaCRecorderSink(rac_recorder(dataset, env, recipe.to_dict()), TASK_TEXT, source, keep=_successful)
    rollout = Rollout(env, source, [sink], realtime=False)
    try:
        result = rollout.run(episodes, seed=seed, progress=progress, keep=_successful, max_attempts=3 * episodes)
    finally:
        rollout.close()
    if len(result.kept) < episodes:
        raise RuntimeError(f"the scripted expert succeeded in {len(result.kept)} of {len(result.episodes)} demos")
    return sum(e.steps for e in result.kept) / float(env.unwrapped.backend.spec.control_hz)


@dataclass
class RoundStats:
    """What one collection round cost and produced."""

    episodes: int = 0
    operator_s: float = 0.0
    rewind_s: float = 0.0
    correction_s: float = 0.0
    interventions: int = 0
    terminations: dict[str, int] = field(default_factory=dict)
    failure_reasons: dict[str, int] = field(default_factory=dict)
    retries_per_success: float = 0.0


def load_policy(checkpoint: str | Path):
    from robotlearn.policies.diffusion import load_diffusion

    return load_diffusion(checkpoint)


def make_operator(kind: str, env, dataset: str | Path | None = None, rewind: bool = True, **options: Any):
    """"simulated" or a teleop device name (keyboard, gamepad, spacemouse, leader_arm) with a clutch."""
    if kind == "simulated":
        from robotlearn.correction.sim_operator import SimulatedOperator

        return SimulatedOperator(env, distribution=demo_distribution(env, dataset) if dataset else None,
                                 rewind=rewind, **options)
    from robotlearn.correction.clutch import ClutchOperator

    return ClutchOperator.for_device(kind, env, **options)


def demo_distribution(env, dataset: str | Path) -> DemoStateDistribution | None:
    from robotlearn.data.loader import load_demos

    demos = load_demos(dataset)
    if not np.any(demos.data["source"] == "demo"):
        return None
    return DemoStateDistribution.from_demos(demos, env.unwrapped.task)


def collect_round(env, recipe: EnvRecipe, dataset: str | Path, checkpoint: str | Path, episodes: int, seed: int,
                  mode: str = "rac", rewind: bool = True, operator: Any = None,
                  progress: str | None = "collect", rewind_speed: float = 1.0,
                  rewind_max_s: float = 1.5) -> RoundStats:
    """One round: `episodes` policy rollouts with the operator intervening, recorded into `dataset`."""
    operator = operator if operator is not None else make_operator("simulated", env, dataset, rewind=rewind)
    dist = getattr(operator, "distribution", None)
    task = env.unwrapped.task
    auto = None
    if dist is not None:
        hz = float(env.unwrapped.backend.spec.control_hz)

        def auto(path, obs):
            return in_distribution_target(path, obs, task, dist, min_back=3, max_back=int(rewind_max_s * hz))

    source = RaCSource(env, PolicySource(load_policy(checkpoint)), operator, mode=mode, rewind=rewind,
                       rewind_speed=rewind_speed, auto_target=auto)
    sink = RaCRecorderSink(rac_recorder(dataset, env, recipe.to_dict()), TASK_TEXT, source)
    terminations: Counter = Counter()
    per_episode: list[tuple[str, int]] = []

    def note(stats: EpisodeStats) -> None:
        reason = source.termination(stats)
        terminations[reason] += 1
        per_episode.append((reason, source.interventions))

    from robotlearn.rollout import CallbackSink

    rollout = Rollout(env, source, [sink, CallbackSink(lambda tr: None, note)], realtime=None)
    try:
        rollout.run(episodes, seed=seed, progress=progress)
    finally:
        rollout.close()
    hz = source.hz
    good = [n for reason, n in per_episode if reason in ("success", "correction_done")]
    return RoundStats(episodes=len(per_episode), operator_s=source.operator_seconds,
                      rewind_s=source.operator_steps["rewind"] / hz, correction_s=source.operator_steps["correction"] / hz,
                      interventions=source.interventions_total, terminations=dict(terminations),
                      failure_reasons=dict(getattr(operator, "reasons", {})),
                      retries_per_success=float(np.mean(good)) if good else 0.0)


def train_policy(dataset: str | Path, out: str | Path, steps: int, init_from: str | Path | None = None,
                 seed: int = 0, config: str = "diffusion_rac", log: Callable[[str], None] = print,
                 overrides: list[str] | None = None) -> Path:
    """Fine-tune (or, without `init_from`, train) on the dataset's training data (`training_demos`)."""
    import torch

    from robotlearn.core.config import load_config
    from robotlearn.policies.diffusion import DiffusionConfig
    from robotlearn.policies.diffusion.train import train

    torch.set_num_threads(1)
    cfg = load_config(DiffusionConfig, "algos", config, overrides)
    cfg.train.steps, cfg.train.seed = int(steps), int(seed)
    cfg.train.warmup_steps = min(cfg.train.warmup_steps, max(steps // 10, 1))
    cfg.train.log_every = max(min(cfg.train.log_every, steps), 1)
    cfg.train.init_from = str(init_from) if init_from else None
    train(cfg, dataset, out, log=log, select=training_demos)
    return Path(out)


def evaluate(env, checkpoint: str | Path, episodes: int, seed: int, progress: str | None = "eval",
             ) -> tuple[float, float]:
    """(success rate, mean number of sub-tasks completed) of the policy alone (no operator). The second
    tells rounds apart while full successes of a small-budget policy are still rare."""
    from robotlearn.rollout import CallbackSink

    reached: list[int] = []
    best = [0]

    def on_step(tr) -> None:
        best[0] = max(best[0], int(tr.info.get("subtask_id", 0)))

    def on_end(stats: EpisodeStats) -> None:
        reached.append(best[0])
        best[0] = 0

    rollout = Rollout(env, PolicySource(load_policy(checkpoint)), [CallbackSink(on_step, on_end)], realtime=None)
    try:
        rate = rollout.run(episodes, seed=seed, progress=progress).success_rate
    finally:
        rollout.close()
    return rate, float(np.mean(reached)) if reached else 0.0


@dataclass
class RunConfig:
    """A whole RaC run (`robotlearn rac run`, bench/rac.py)."""

    env: dict[str, Any]                  # EnvRecipe.to_dict()
    demos: int = 20
    rounds: int = 2
    episodes_per_round: int = 10
    train_steps: int = 3000
    finetune_steps: int = 1000
    eval_episodes: int = 50
    mode: str = "rac"                    # rac | continue | demos (more full demos instead of interventions)
    rewind: bool = True
    # assisted rewind speed (fraction of the action scale) and how far back the in-distribution search may go:
    # bench/rac.py measured 0.5 / 4 s spending 90 % of RaC's operator time rewinding, 1.0 / 1.5 s about 40 %
    rewind_speed: float = 1.0
    rewind_max_s: float = 1.5
    seed: int = 0
    config: str = "diffusion_rac"
    train_overrides: list[str] = field(default_factory=list)   # diffusion config key=value (e.g. train.batch_size=32)
    demos_per_round: list[int] | None = None  # mode "demos": demos added in each round (equal operator time)


def round_zero(cfg: RunConfig, out: str | Path, log: Callable[[str], None] = print,
               progress: bool = True) -> dict[str, Any]:
    """Round 0: `cfg.demos` full demos into out/dataset, train out/round-0, evaluate; returns rac.json's content."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = EnvRecipe.from_dict(cfg.env)
    env = recipe.make()
    show = (lambda name: name) if progress else (lambda name: None)
    try:
        demo_s = collect_demos(env, recipe, out / "dataset", cfg.demos, cfg.seed * 100_000, show("demos"))
        ckpt = train_policy(out / "dataset", out / "round-0", cfg.train_steps, seed=cfg.seed, config=cfg.config,
                            log=log, overrides=cfg.train_overrides)
        rate, subtasks = evaluate(env, ckpt, cfg.eval_episodes, 1_000_000 + cfg.seed * 1000, show("eval"))
    finally:
        env.close()
    log(f"round 0: {cfg.demos} demos ({demo_s:.0f} operator s), success {rate:.2f}, sub-tasks {subtasks:.2f}")
    results = {"config": asdict(cfg), "rounds": [{"round": 0, "operator_s": demo_s, "success": rate,
                                                   "subtasks": subtasks, "demo_s": demo_s, "episodes": cfg.demos}]}
    (out / RESULTS).write_text(json.dumps(results, indent=1))
    return results


def later_rounds(cfg: RunConfig, out: str | Path, results: dict[str, Any], log: Callable[[str], None] = print,
                 progress: bool = True) -> dict[str, Any]:
    """Rounds 1..cfg.rounds on top of out/dataset and out/round-0 (from `round_zero`, possibly copied).

    mode "demos" is the baseline that spends each round's operator time on more full demos instead
    (`demos_per_round`, e.g. matched to a RaC run's operator seconds)."""
    from tqdm import tqdm

    out = Path(out)
    recipe = EnvRecipe.from_dict(cfg.env)
    dataset, ckpt = out / "dataset", out / "round-0"
    results = {**results, "config": asdict(cfg), "rounds": list(results["rounds"][:1])}
    operator_s = results["rounds"][0]["operator_s"]
    show = (lambda name: name) if progress else (lambda name: None)
    env = recipe.make()
    bar = tqdm(total=cfg.rounds, desc=f"rac {cfg.mode}", unit="round", disable=not progress, leave=False)
    try:
        for k in range(1, cfg.rounds + 1):
            seed = cfg.seed * 100_000 + 10_000 * k
            if cfg.mode == "demos":
                n = cfg.demos_per_round[k - 1] if cfg.demos_per_round else cfg.episodes_per_round
                spent = collect_demos(env, recipe, dataset, n, seed, show("demos"))
                stats = RoundStats(episodes=n, operator_s=spent)
            else:
                stats = collect_round(env, recipe, dataset, ckpt, cfg.episodes_per_round, seed, cfg.mode,
                                      cfg.rewind, progress=show("collect"), rewind_speed=cfg.rewind_speed,
                                      rewind_max_s=cfg.rewind_max_s)
            ckpt = train_policy(dataset, out / f"round-{k}", cfg.finetune_steps, init_from=ckpt,
                                seed=cfg.seed + k, config=cfg.config, log=log, overrides=cfg.train_overrides)
            rate, subtasks = evaluate(env, ckpt, cfg.eval_episodes, 1_000_000 + cfg.seed * 1000, show("eval"))
            operator_s += stats.operator_s
            results["rounds"].append({**asdict(stats), "round": k, "round_operator_s": stats.operator_s,
                                      "operator_s": operator_s, "success": rate, "subtasks": subtasks})
            log(f"round {k} ({cfg.mode}): +{stats.operator_s:.0f} operator s (total {operator_s:.0f}), "
                f"success {rate:.2f}, sub-tasks {subtasks:.2f}, terminations {stats.terminations}")
            (out / RESULTS).write_text(json.dumps(results, indent=1))
            bar.update(1)
    finally:
        bar.close()
        env.close()
    return results


def run(cfg: RunConfig, out: str | Path, log: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    """The whole loop: `round_zero`, then `later_rounds`; writes and returns rac.json's content."""
    return later_rounds(cfg, out, round_zero(cfg, out, log, progress), log, progress)
