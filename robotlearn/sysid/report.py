"""`robotlearn sysid report`: trajectory overlays (measured / nominal sim / calibrated sim) and a table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from robotlearn.sim.physical import Calibration
from robotlearn.sysid.data import SysidData
from robotlearn.sysid.registry import Registry
from robotlearn.sysid.simulate import EFFORT_WEIGHT, Replayer


def parameter_table(registry: Registry, calibration: Calibration, truth: dict | None) -> list[dict]:
    """One row per registry parameter: estimate, std, and (with ground truth) the error."""
    estimate = registry.values_of(calibration.params)
    flat_std = {}
    for key, value in calibration.uncertainty.items():
        if isinstance(value, dict):
            flat_std.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat_std[key] = value
    true = [float(v) for v in registry.values_of(truth)] if truth is not None else [None] * len(estimate)
    rows = []
    for p, e, t in zip(registry.parameters, estimate, true, strict=True):
        row = {"parameter": p.name, "estimate": float(e), "std": flat_std.get(p.name), "truth": t}
        row["std"] = None if row["std"] is None else float(row["std"])
        if t is not None:
            row["error"] = float(e - t)
            row["error_pct"] = None if p.name == "latency_s" else float(100 * (e - t) / t)
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    def fmt(value, pct=False):
        return "" if value is None else (f"{value:+.1f} %" if pct else f"{value:.4g}")

    lines = ["| parameter | estimate | std | truth | error |", "|---|---|---|---|---|"]
    for r in rows:
        err = fmt(r.get("error_pct"), True) if r.get("error_pct") is not None else fmt(r.get("error"))
        lines.append(f"| {r['parameter']} | {fmt(r['estimate'])} | {fmt(r['std'])} | {fmt(r['truth'])} | {err} |")
    return "\n".join(lines)


def write_report(data: SysidData, calibration: Calibration, registry: Registry, out: str | Path, sim: str = "mujoco",
                 truth_path: str | Path | None = None, sim_options: dict | None = None) -> dict:
    """Writes overlay.png, parameters.md and report.yaml under `out`; returns the summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    truth = yaml.safe_load(Path(truth_path).read_text()) if truth_path else None
    replayer = Replayer(data, sim, sim_options=sim_options)
    try:
        measured = replayer.measured
        nominal = replayer.simulate(registry.to_params(registry.prior))
        calibrated = replayer.simulate(calibration.params)
    finally:
        replayer.close()
    n_arm = replayer.n_arm
    rms = {"nominal_rad": float(np.sqrt(np.mean((nominal[:, :n_arm] - measured[:, :n_arm]) ** 2))),
           "calibrated_rad": float(np.sqrt(np.mean((calibrated[:, :n_arm] - measured[:, :n_arm]) ** 2)))}
    channels = [("q{} (rad)", 1.0)]
    if replayer.effort:  # present current, back in N m
        channels.append(("effort{} (N m)", 1.0 / EFFORT_WEIGHT))
        for name, series in (("nominal", nominal), ("calibrated", calibrated)):
            rms[f"{name}_effort_nm"] = float(np.sqrt(np.mean((series[:, n_arm:] - measured[:, n_arm:]) ** 2))
                                             / EFFORT_WEIGHT)
    t = np.arange(len(measured)) / data.control_hz
    fig, axes = plt.subplots(n_arm, len(channels), figsize=(10 * len(channels), 1.8 * n_arm), sharex=True,
                             squeeze=False)
    for c, (label, unit) in enumerate(channels):
        for j in range(n_arm):
            ax, col = axes[j, c], c * n_arm + j
            ax.plot(t, unit * measured[:, col], "k", lw=1.5, label="measured")
            ax.plot(t, unit * nominal[:, col], "tab:red", lw=1, ls="--", label="nominal sim")
            ax.plot(t, unit * calibrated[:, col], "tab:blue", lw=1, label="calibrated sim")
            ax.set_ylabel(label.format(j))
        axes[-1, c].set_xlabel("replayed time (s, segments concatenated)")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    fig.suptitle(f"sysid overlay: rms nominal {rms['nominal_rad'] * 1e3:.2f} mrad, "
                 f"calibrated {rms['calibrated_rad'] * 1e3:.2f} mrad")
    fig.tight_layout()
    fig.savefig(out / "overlay.png", dpi=90)
    plt.close(fig)
    rows = parameter_table(registry, calibration, truth)
    (out / "parameters.md").write_text(markdown(rows) + "\n")
    summary = {"rms": rms, "parameters": rows}
    (out / "report.yaml").write_text(yaml.safe_dump(summary, sort_keys=False))
    return summary
