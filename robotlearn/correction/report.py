"""`robotlearn rac report`: success vs round and vs operator minutes, one line per run (RaC and baselines)."""

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

    fig, (by_round, by_time) = plt.subplots(1, 2, figsize=(10, 4))
    for run in runs:
        data = load_results(run)
        rounds = data["rounds"]
        cfg = data.get("config", {})
        label = f"{run.name} ({cfg.get('mode', '?')}{'' if cfg.get('rewind', True) else ', no rewind'})"
        by_round.plot([r["round"] for r in rounds], [r["success"] for r in rounds], "o-", label=label)
        by_time.plot([r["operator_s"] / 60 for r in rounds], [r["success"] for r in rounds], "o-", label=label)
    by_round.set(xlabel="round", ylabel="success rate", ylim=(-0.02, 1.02), title="success vs round")
    by_time.set(xlabel="operator minutes", ylabel="success rate", ylim=(-0.02, 1.02), title="success vs operator time")
    by_round.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
