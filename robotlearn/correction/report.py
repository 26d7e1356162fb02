"""`robotlearn rac report`: success (and sub-tasks completed) vs round and vs operator minutes, one line per run
(RaC and its baselines). Sub-tasks tell rounds apart while full successes of a small-budget policy are rare."""

from __future__ import annotations

import json
from pathlib import Path

from robotlearn.correction.loop import RESULTS


def load_results(run: Path) -> dict:
    path = run / RESULTS
    if not path.exists():
        raise FileNotFoundError(f"{run}: no {RESULTS} (not a `robotlearn rac run` folder)")
    try:
        data = json.loads(path.read_text())
        rounds = data["rounds"]
        [(r["round"], r["success"], r["operator_s"]) for r in rounds]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a RaC results file ({err})") from None
    return data


def plot_runs(runs: list[Path], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for run in runs:
        data = load_results(run)
        rounds = data["rounds"]
        cfg = data.get("config", {})
        label = f"{run.name} ({cfg.get('mode', '?')}{'' if cfg.get('rewind', True) else ', no rewind'})"
        x_round = [r["round"] for r in rounds]
        x_min = [r["operator_s"] / 60 for r in rounds]
        for row, key in enumerate(("success", "subtasks")):
            y = [r.get(key, 0.0) for r in rounds]
            axes[row, 0].plot(x_round, y, "o-", label=label)
            axes[row, 1].plot(x_min, y, "o-", label=label)
    for row, (name, top) in enumerate((("success rate", 1.02), ("sub-tasks completed (of 4)", 4.05))):
        axes[row, 0].set(xlabel="round", ylabel=name, ylim=(-0.02, top))
        axes[row, 1].set(xlabel="operator minutes", ylabel=name, ylim=(-0.02, top))
    axes[0, 0].set_title("vs round")
    axes[0, 1].set_title("vs operator time")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
