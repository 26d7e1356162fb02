"""`robotlearn train <algo> --env ... --backend ... [--steps N] [key=value ...]`: train a policy."""

from __future__ import annotations

import argparse
import importlib

import torch

from robotlearn.correction.hil import OPERATORS

# algo -> "module:function(args) -> int"; one line per algorithm
TRAINERS: dict[str, str] = {
    "sac": "robotlearn.policies.sac.train:cli_main",
    "diffusion": "robotlearn.policies.diffusion.train:cli_main",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("algo", help=f"algorithm: {', '.join(sorted(TRAINERS))}")
    parser.add_argument("--env", help="env id, e.g. robotlearn/ArmReach-v0 or InvertedPendulum-v5")
    parser.add_argument("--backend", help="mujoco | pybullet | real (robotlearn envs only)")
    parser.add_argument("--config", help="algo config name in configs/algos/ or a YAML path (default: <algo>)")
    parser.add_argument("--steps", type=int, help="total env steps")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--dataset", help="recorded dataset directory (offline algos: diffusion)")
    parser.add_argument("--out", help="run directory (progress.csv, checkpoint/); default runs/<algo>-<env>")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint")
    parser.add_argument("--intervene", default="none", choices=OPERATORS,
                        help="operator device that may take over during training (HIL); scripted: the task's expert")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. utd=4 batch_size=128")
    # key=value overrides may come after the options (`train sac --env X utd=4`), which plain parse_args
    # rejects for a second positional; intermixed parsing accepts it
    parser.parse_args = parser.parse_intermixed_args  # type: ignore[method-assign]


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    if args.algo not in TRAINERS:
        raise ValueError(f"unknown algo {args.algo!r}; known: {', '.join(sorted(TRAINERS))}")
    module_name, func = TRAINERS[args.algo].split(":")
    return getattr(importlib.import_module(module_name), func)(args)
