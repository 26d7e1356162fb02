"""`robotlearn rac collect|train|run|report`: RaC (recovery-and-correction) data collection and training.

collect   one round: policy rollouts with an operator (simulated, or a person on a device with a clutch) into
          a RaC dataset — or, without --policy, full scripted demos (round 0)
train     fine-tune a diffusion policy on a RaC dataset's training data (demos + recoveries + corrections)
run       the whole loop: round-0 demos, then --rounds rounds of collect + fine-tune + eval
report    plot success vs round and vs operator minutes for one or more runs (RaC and its baselines)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from robotlearn.cli.common import add_backend_arguments, backend_options

OPERATORS = ("simulated", "keyboard", "gamepad", "spacemouse", "leader_arm")


def _env_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="ArmStack-v0", help="a task with sub-tasks")
    add_backend_arguments(p)
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="task config override, e.g. max_episode_steps=80")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    c = sub.add_parser("collect", help="one round of rollouts with interventions (or demos) into a dataset",
                       formatter_class=parser.formatter_class)
    _env_args(c)
    c.add_argument("--dataset", required=True, help="RaC dataset folder (created or appended to)")
    c.add_argument("--policy", help="checkpoint to deploy; without it, scripted full demos are recorded")
    c.add_argument("--episodes", type=int, default=10)
    c.add_argument("--operator", choices=OPERATORS, default="simulated")
    c.add_argument("--device-port", help="leader arm: its servo bus (pty or serial device)")
    c.add_argument("--mode", choices=("rac", "continue"), default="rac",
                   help="rac: end the episode after a correction (Rule 2); continue: hand back (HG-DAgger)")
    c.add_argument("--no-rewind", action="store_true", help="no assisted rewind before corrections")
    c.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("train", help="fine-tune on a RaC dataset's training data", formatter_class=parser.formatter_class)
    t.add_argument("--dataset", required=True)
    t.add_argument("--out", required=True, help="checkpoint folder to write")
    t.add_argument("--init-from", help="checkpoint to fine-tune (default: train from scratch)")
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--config", default="diffusion_rac", help="configs/algos/<name>.yaml")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="diffusion config overrides")
    r = sub.add_parser("run", help="the whole loop with the simulated operator", formatter_class=parser.formatter_class)
    _env_args(r)
    r.add_argument("--out", required=True, help="run folder (dataset/, round-<k>/, rac.json)")
    r.add_argument("--rounds", type=int, default=2)
    r.add_argument("--operator", choices=("simulated",), default="simulated")
    r.add_argument("--mode", choices=("rac", "continue", "demos"), default="rac",
                   help="demos: spend the rounds on more full demos (baseline)")
    r.add_argument("--no-rewind", action="store_true")
    r.add_argument("--demos", type=int, default=20, help="round-0 full demos")
    r.add_argument("--episodes", type=int, default=10, help="rollouts (or demos) per round")
    r.add_argument("--train-steps", type=int, default=3000, help="round-0 training steps")
    r.add_argument("--finetune-steps", type=int, default=1000, help="fine-tuning steps per round")
    r.add_argument("--eval-episodes", type=int, default=50)
    r.add_argument("--config", default="diffusion_rac")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("train_overrides", nargs="*", metavar="KEY=VALUE", help="diffusion config overrides")
    p = sub.add_parser("report", help="plot success vs round and vs operator minutes", formatter_class=parser.formatter_class)
    p.add_argument("runs", nargs="+", help="run folders (each with rac.json)")
    p.add_argument("--out", required=True, help="plot file (.png)")


def _recipe(args):
    from robotlearn.rollout import EnvRecipe

    return EnvRecipe(args.env, args.backend, overrides=tuple(args.override), backend_options=backend_options(args))


def _positive(name: str, value: int) -> None:
    if value <= 0:
        raise ValueError(f"--{name} must be positive, got {value}")


def _collect(args) -> int:
    from robotlearn.correction import loop

    _positive("episodes", args.episodes)
    if args.policy and not (Path(args.policy) / "config.json").exists():
        raise FileNotFoundError(f"--policy {args.policy}: no checkpoint there (config.json missing)")
    recipe = _recipe(args)
    env = recipe.make()
    try:
        if not args.policy:
            seconds = loop.collect_demos(env, recipe, args.dataset, args.episodes, args.seed)
            print(f"{args.episodes} demos into {args.dataset}: {seconds:.1f} operator s")
            return 0
        options = {"port": args.device_port} if args.device_port else {}
        operator = loop.make_operator(args.operator, env, args.dataset, rewind=not args.no_rewind, **options)
        stats = loop.collect_round(env, recipe, args.dataset, args.policy, args.episodes, args.seed, args.mode,
                                   not args.no_rewind, operator=operator)
    finally:
        env.close()
    print(json.dumps({"dataset": args.dataset, **stats.__dict__}))
    return 0


def _train(args) -> int:
    from robotlearn.correction.loop import train_policy
    from robotlearn.data.dataset import load_meta

    _positive("steps", args.steps)
    load_meta(args.dataset)  # a one-line error for a missing or corrupt dataset, before torch loads
    if args.init_from and not (Path(args.init_from) / "config.json").exists():
        raise FileNotFoundError(f"--init-from {args.init_from}: no checkpoint there (config.json missing)")
    train_policy(args.dataset, args.out, args.steps, args.init_from, args.seed, args.config,
                 log=lambda line: print(line, flush=True), overrides=args.overrides)
    print(f"checkpoint: {args.out}")
    return 0


def _run(args) -> int:
    from robotlearn.correction.loop import RunConfig, run

    for name in ("rounds", "demos", "episodes", "train_steps", "finetune_steps", "eval_episodes"):
        _positive(name.replace("_", "-"), getattr(args, name))
    cfg = RunConfig(env=_recipe(args).to_dict(), demos=args.demos, rounds=args.rounds,
                    episodes_per_round=args.episodes, train_steps=args.train_steps,
                    finetune_steps=args.finetune_steps, eval_episodes=args.eval_episodes, mode=args.mode,
                    rewind=not args.no_rewind, seed=args.seed, config=args.config,
                    train_overrides=list(args.train_overrides))
    results = run(cfg, args.out, log=lambda line: print(line, flush=True))
    last = results["rounds"][-1]
    print(f"{args.out}: success {last['success']:.2f} after {len(results['rounds']) - 1} rounds, "
          f"{last['operator_s'] / 60:.1f} operator min")
    return 0


def _report(args) -> int:
    from robotlearn.correction.report import plot_runs

    path = plot_runs([Path(r) for r in args.runs], Path(args.out))
    print(f"plot: {path}")
    return 0


def run(args) -> int:
    return {"collect": _collect, "train": _train, "run": _run, "report": _report}[args.action](args)
