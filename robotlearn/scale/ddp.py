"""Diffusion training on several processes or machines: torchrun starts the ranks, DistributedDataParallel
(gloo, CPU) averages their gradients.

`robotlearn train diffusion --nproc N [--nnodes M --node-rank R --master HOST:PORT]` calls `launch`, which
runs `torchrun ... -m robotlearn.scale.ddp <the same arguments>`; every rank runs `main` here: it joins the
process group torchrun set up (env:// rendezvous) and runs the ordinary training loop with `ddp=True`,
where each rank trains on its share of the same global batch (see robotlearn.policies.diffusion.train).
Rank 0 logs and writes the checkpoint. `--check-gradients` instead compares, on the first global batch,
the gradients DDP produced with the single-process gradient of the whole batch, on every rank: a quick
check that a new multi-machine setup (versions, network) computes what one process would.
"""

from __future__ import annotations

import argparse
import copy
import faulthandler
import json
import subprocess
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from robotlearn.policies.diffusion.train import (
    DiffusionLoss,
    build_model,
    config_from_args,
    draw_global_batch,
    local_share,
    train,
)


def _master(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--master takes HOST:PORT, got {text!r}")
    return host, int(port)


def launch(args: argparse.Namespace) -> int:
    """Run this machine's ranks through torchrun; returns its exit code."""
    if args.nproc < 1 or args.nnodes < 1 or not 0 <= args.node_rank < args.nnodes:
        raise ValueError(f"need --nproc >= 1, --nnodes >= 1 and 0 <= --node-rank < --nnodes "
                         f"(got {args.nproc}, {args.nnodes}, {args.node_rank})")
    host, port = _master(args.master)
    forwarded = ["--dataset", args.dataset, "--config", args.config]
    for flag, value in (("--steps", args.steps), ("--seed", args.seed), ("--out", args.out)):
        if value is not None:
            forwarded += [flag, str(value)]
    if getattr(args, "check_gradients", False):
        forwarded.append("--check-gradients")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={args.nproc}",
           f"--nnodes={args.nnodes}", f"--node-rank={args.node_rank}", f"--master-addr={host}",
           f"--master-port={port}", "-m", "robotlearn.scale.ddp", *forwarded, *args.overrides]
    code = subprocess.run(cmd, check=False).returncode
    if code:
        raise RuntimeError(f"torchrun exited with {code} (the ranks' errors are above)")
    return 0


def check_gradients(cfg, dataset: str) -> dict[str, float]:
    """Max |DDP gradient - single-process gradient| over all parameters on the first global batch."""
    torch.manual_seed(cfg.train.seed)
    model, data = build_model(cfg, dataset)
    single = copy.deepcopy(model)
    parts = draw_global_batch(cfg, model, len(data), np.random.default_rng(cfg.train.seed),
                              torch.Generator().manual_seed(cfg.train.seed))
    idx, noise, t = parts
    DiffusionLoss(single)(data.batch(idx), noise, t).backward()
    idx, noise, t = local_share(parts, dist.get_rank(), dist.get_world_size())
    net = DistributedDataParallel(DiffusionLoss(model))  # kept alive: its reducer averages during backward
    net(data.batch(idx), noise, t).backward()
    diff = max(float((a.grad - b.grad).abs().max()) for a, b in zip(model.parameters(), single.parameters(),
                                                                       strict=True))
    scale = max(float(b.grad.abs().max()) for b in single.parameters())
    return {"rank": dist.get_rank(), "world": dist.get_world_size(), "max_abs_diff": diff, "max_abs_grad": scale}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="robotlearn.scale.ddp", description="one rank of DDP diffusion training")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--config", default="diffusion")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--out")
    parser.add_argument("--check-gradients", action="store_true")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg, out = config_from_args(args)
    faulthandler.enable()  # a rank killed by a signal (an abort in native code) prints every thread's stack
    dist.init_process_group("gloo")  # rank, world size and rendezvous from torchrun's environment
    try:
        rank = dist.get_rank()
        if args.check_gradients:
            sys.stdout.write(json.dumps(check_gradients(cfg, args.dataset)) + "\n")  # one write: ranks share stdout
            sys.stdout.flush()
        else:
            train(cfg, args.dataset, out if rank == 0 else None,
                  log=(lambda line: print(line, flush=True)) if rank == 0 else (lambda line: None), ddp=True)
            if rank == 0:
                print(f"checkpoint: {out} ({dist.get_world_size()} processes)", flush=True)
        dist.barrier()  # leave together: no rank tears its connections down while rank 0 still saves
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
