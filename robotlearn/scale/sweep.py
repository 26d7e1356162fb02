"""Evaluation sweeps: one checkpoint scored over seeds x backends by Ray tasks, gathered into one table.

Each cell is `robotlearn eval`'s own `evaluate_checkpoint` (the one rollout runner, the recipe's env on
another backend). The checkpoint travels as its files' bytes (config.json and the safetensors weights,
not the optimizer state or replay buffer), so workers on other machines need no shared filesystem and
nothing is unpickled from it: each task writes the bytes into a temp dir and loads them with the
checkpoint's own checks (sha256, strict shapes).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from robotlearn.policies.checkpoint import read_config

TRAINING_ONLY = ("train_state.safetensors", "replay.safetensors")  # what evaluation never reads


def checkpoint_files(checkpoint: str | Path) -> dict[str, bytes]:
    """The files a policy loads from, as bytes (config.json checked first, for a clear error here)."""
    directory = Path(checkpoint)
    config = read_config(directory)
    names = ["config.json", *(n for n in config.get("files", {}) if n not in TRAINING_ONLY)]
    return {name: (directory / name).read_bytes() for name in names if (directory / name).exists()}


def evaluate_cell(files: dict[str, bytes], backend: str | None, seed: int, episodes: int,
                  options: dict[str, Any] | None) -> dict[str, Any]:
    """One (backend, seed) cell, run where Ray put it."""
    import torch

    from robotlearn.cli.eval import evaluate_checkpoint

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="robotlearn-eval-") as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        summary = evaluate_checkpoint(tmp, backend, episodes, seed, options=options)
    return {"seed": seed, **summary}


def sweep(checkpoint: str | Path, backends: list[str | None], seeds: list[int], episodes: int, workers: int,
          address: str | None = None, options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every (backend, seed) cell with at most `workers` Ray tasks in flight (0: one after another in this
    process, no Ray); rows in backend-then-seed order."""
    if workers < 0:
        raise ValueError(f"--workers must be >= 0, got {workers}")
    if episodes <= 0:
        raise ValueError(f"--episodes must be positive, got {episodes}")
    files = checkpoint_files(checkpoint)
    if workers == 0:
        return [evaluate_cell(files, b, s, episodes, options) for b in backends for s in seeds]
    import ray

    from robotlearn.scale.sac import connect

    connect(address, None if address else workers)
    task = ray.remote(num_cpus=1, max_retries=1)(evaluate_cell)
    files_ref = ray.put(files)
    cells = [(b, s) for b in backends for s in seeds]
    rows: dict[int, dict[str, Any]] = {}
    pending: dict[Any, int] = {}
    for i, (backend, seed) in enumerate(cells):
        if len(pending) >= workers:
            done, _ = ray.wait(list(pending), num_returns=1)
            rows[pending.pop(done[0])] = ray.get(done[0])
        pending[task.remote(files_ref, backend, seed, episodes, options)] = i
    for ref, i in pending.items():
        rows[i] = ray.get(ref)
    return [rows[i] for i in range(len(cells))]


def format_table(rows: list[dict[str, Any]]) -> str:
    """One table: a line per cell, then per backend the mean and spread over seeds."""
    lines = [f"{'backend':<16} {'seed':>6} {'episodes':>8} {'success':>8} {'return':>10} {'length':>7}"]
    for r in rows:
        lines.append(f"{r['backend'] or '-':<16} {r['seed']:>6} {r['episodes']:>8} {r['success_rate']:>8.0%} "
                     f"{r['mean_return']:>10.2f} {r['mean_length']:>7.1f}")
    for backend in dict.fromkeys(r["backend"] for r in rows):
        mine = [r for r in rows if r["backend"] == backend]
        succ, ret = np.array([r["success_rate"] for r in mine]), np.array([r["mean_return"] for r in mine])
        lines.append(f"{(backend or '-') + ' (mean)':<16} {'n=' + str(len(mine)):>6} "
                     f"{sum(r['episodes'] for r in mine):>8} {succ.mean():>8.0%} {ret.mean():>10.2f} "
                     f"{'±' + format(ret.std(), '.2f'):>7}")
    return "\n".join(lines)
