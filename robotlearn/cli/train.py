"""`robotlearn train sac|diffusion [options] [key=value ...]`: train a policy.

Each algorithm has its own options and config keys (`robotlearn train sac --help`). The help is built
without importing torch: config keys are listed from the algorithm's default YAML in configs/algos/.
"""

from __future__ import annotations

import argparse
import importlib

import yaml

from robotlearn.cli.common import add_backend_arguments, backend_options
from robotlearn.correction.hil import OPERATORS

# algo -> ("module:function(args) -> int", default config name, one-line help)
TRAINERS: dict[str, tuple[str, str, str]] = {
    "sac": ("robotlearn.policies.sac.train:cli_main", "sac", "SAC (RLPD demos, HIL interventions) on any env"),
    "diffusion": ("robotlearn.policies.diffusion.train:cli_main", "diffusion", "diffusion policy from a dataset"),
}


def _config_keys(name: str) -> str:
    from robotlearn.core.config import config_path

    path = config_path("algos", name)
    data = yaml.safe_load(path.read_text()) or {}

    def lines(node: dict, prefix: str = "") -> list[str]:
        out = []
        for key, value in node.items():
            if isinstance(value, dict):
                out += lines(value, f"{prefix}{key}.")
            else:
                out.append(f"  {prefix}{key}={value!r}")
        return out

    return f"config keys (defaults from {path.name}; override as key=value):\n" + "\n".join(lines(data))


def _common(parser: argparse.ArgumentParser, algo: str) -> None:
    parser.add_argument("--config", default=TRAINERS[algo][1], help="algo config name in configs/algos/ or a YAML path")
    parser.add_argument("--steps", type=int, help="training steps (default: the config's)")
    parser.add_argument("--seed", type=int, help="random seed (default: the config's)")
    parser.add_argument("--out", help=f"run directory (default: runs/{algo}-<env or dataset>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, see below")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="algo", required=True, metavar="{" + ",".join(TRAINERS) + "}")
    sac = sub.add_parser("sac", help=TRAINERS["sac"][2], description=TRAINERS["sac"][2], epilog=_config_keys("sac"),
                         formatter_class=_formatter(parser))
    sac.add_argument("--env", help="env id, e.g. robotlearn/ArmReach-v0 or InvertedPendulum-v5 (default: the config's)")
    add_backend_arguments(sac, default=None, help_default="the config's")
    sac.add_argument("--dataset", help="recorded demos (a robotlearn dataset) for RLPD symmetric sampling")
    sac.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint")
    sac.add_argument("--intervene", default="none", choices=OPERATORS,
                     help="operator device that may take over during training (HIL); scripted: the task's expert")
    scale = sac.add_argument_group("scale-out (Ray; see README 'Scale-out')")
    scale.add_argument("--actors", type=int, default=0, metavar="N",
                       help="N Ray actors step envs while an asynchronous learner updates (0: this process alone)")
    scale.add_argument("--address", help="join this Ray cluster (e.g. auto, or host:6379 from `ray start --head`)")
    scale.add_argument("--robot-resource", metavar="NAME",
                       help="place actor 0 (the one with the --intervene operator) on a node started with "
                            "--resources '{\"NAME\": 1}'")
    _common(sac, "sac")
    diffusion = sub.add_parser("diffusion", help=TRAINERS["diffusion"][2], description=TRAINERS["diffusion"][2],
                               epilog=_config_keys("diffusion"), formatter_class=_formatter(parser))
    diffusion.add_argument("--dataset", required=True, help="recorded dataset directory (see `robotlearn record`)")
    ddp = diffusion.add_argument_group("scale-out (torchrun DistributedDataParallel, gloo)")
    ddp.add_argument("--nproc", type=int, default=1, metavar="N", help="training processes on this machine")
    ddp.add_argument("--nnodes", type=int, default=1, help="machines taking part (torchrun --nnodes)")
    ddp.add_argument("--node-rank", type=int, default=0, help="this machine's rank, 0 .. nnodes-1")
    ddp.add_argument("--master", default="127.0.0.1:29500", metavar="HOST:PORT",
                     help="rank 0's address for the process group (torchrun --master-addr/--master-port)")
    ddp.add_argument("--check-gradients", action="store_true",
                     help="with --nproc: compare DDP's gradients with one process's on the first batch, then stop")
    _common(diffusion, "diffusion")


def _formatter(parser: argparse.ArgumentParser):
    base = parser.formatter_class

    class Formatter(argparse.RawDescriptionHelpFormatter, base):  # keep the config-key list's line breaks
        pass

    return Formatter


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(1)
    if args.algo == "sac":
        args.backend_options = backend_options(args)
        if args.actors < 0:
            raise ValueError(f"--actors must be >= 0, got {args.actors}")
        if args.actors or args.address:  # scale-out lives in robotlearn.scale, which policies/ never import
            from robotlearn.scale.sac import cli_main

            args.actors = args.actors or 1
            return cli_main(args)
    if args.algo == "diffusion" and (args.nproc > 1 or args.nnodes > 1 or args.check_gradients):
        from robotlearn.scale.ddp import launch

        return launch(args)
    module_name, func = TRAINERS[args.algo][0].split(":")
    return getattr(importlib.import_module(module_name), func)(args)
