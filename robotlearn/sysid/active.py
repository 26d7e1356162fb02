"""Active excitation: rank candidate designs by the Fisher information they would carry (in sim).

For each candidate, one multisine period (plus the settle) is simulated on the nominal sim, the
recording that sim would produce is replayed with finite-difference perturbations of every registry
parameter (estimator.jacobian), and among the candidates that load no servo past MAX_EFFORT_SHARE of its
effort limit the one whose worst-determined scale is best determined wins (estimator.worst_relative_std).

Why the effort bound: information about the link masses grows with the gravity and inertia torques a
design asks for, so an unconstrained ranking picks designs that drive servos into their torque limit (on
arm6 candidates that saturated four joints scored 10x better than the rest): on a real robot that is
where gears strip and servos overheat, and a clamped torque tells the fit about the limit, not the link.
"""

from __future__ import annotations

import numpy as np

from robotlearn.backends import make_backend
from robotlearn.core.spec import RobotSpec
from robotlearn.sysid.data import SysidData
from robotlearn.sysid.estimator import jacobian, worst_relative_std
from robotlearn.sysid.excitation import PERIOD_S, SETTLE_S, Multisine
from robotlearn.sysid.registry import load_registry
from robotlearn.sysid.simulate import Replayer


def nominal_recording(design: Multisine, spec: RobotSpec, robot, sim: str, seconds: float) -> SysidData:
    """What the nominal sim records for `design` (commands computed as ExcitationSource would send them)."""
    backend = make_backend(spec, sim)
    try:
        dt = 1.0 / spec.control_hz
        steps = int(round((seconds + SETTLE_S) * spec.control_hz))
        home = robot.home_state()["joint_pos"]
        backend.reset(np.random.default_rng(0), {"joint_pos": home})
        fingers = home[robot.n_arm:]
        scale = robot.p["max_joint_delta"]
        target, commands, states = home[:robot.n_arm].copy(), [], [backend.read()]
        for k in range(steps):
            want = design(np.array([(k + 1) * dt]))[0]
            target = target + np.clip(want - target, -scale, scale)
            commands.append(np.concatenate([target, fingers]))
            backend.command(commands[-1])
            backend.advance()
            states.append(backend.read())
    finally:
        backend.close()
    return SysidData.from_states(commands, states, spec.control_hz, spec.name)


#: the most a candidate may ask of any arm servo, as a share of its effort limit, in the nominal sim (a
#: robot heavier than nominal asks more; the random design peaks at 0.7-0.9 on arm6)
MAX_EFFORT_SHARE = 0.7


def peak_effort_share(data: SysidData, spec: RobotSpec, n_arm: int) -> float:
    """The largest |joint effort| / effort limit over the arm's joints in a recording."""
    limit = np.array([j.max_effort for j in spec.joints[:n_arm]])
    return float((np.abs(data.joint_effort[:, :n_arm]) / limit).max())


def most_informative(designs: list[Multisine], spec: RobotSpec, robot, sim: str = "mujoco",
                     registry=None, progress: bool = True) -> tuple[int, list[float], list[float]]:
    """Index of the best safe design, every design's score (worst relative std over one period) and its
    peak effort share. With no safe candidate, the gentlest one (design_summary says so)."""
    from tqdm import tqdm

    registry = registry or load_registry(spec.kind)
    scores, peaks = [], []
    for design in tqdm(designs, desc="active design", unit="design", disable=not progress, leave=False):
        data = nominal_recording(design, spec, robot, sim, PERIOD_S)
        peaks.append(peak_effort_share(data, spec, robot.n_arm))
        replayer = Replayer(data, sim)
        try:
            _, jac = jacobian(replayer, registry, registry.to_unit(registry.prior))
        finally:
            replayer.close()
        scores.append(worst_relative_std(jac, registry))
    safe = [i for i, peak in enumerate(peaks) if peak <= MAX_EFFORT_SHARE]
    if not safe:
        return int(np.argmin(peaks)), scores, peaks
    return min(safe, key=lambda i: scores[i]), scores, peaks


def design_summary(meta: dict) -> str | None:
    """One line on the active design a recording ran (None for another excitation): which candidate, its
    predicted worst std and its peak effort, and whether no candidate was safe."""
    if meta.get("excite") != "active" or "design_peak_effort" not in meta:
        return None
    i, scores, peaks = meta["design_index"], meta["design_scores"], meta["design_peak_effort"]
    line = (f"active design {i + 1} of {len(scores)}: worst predicted std {100 * scores[i]:.1f} % per "
            f"{PERIOD_S:g} s period, peak effort {100 * peaks[i]:.0f} % of the servo limit in the nominal sim")
    if peaks[i] > MAX_EFFORT_SHARE:
        line += f" (no candidate stayed under {100 * MAX_EFFORT_SHARE:.0f} %: ran the gentlest)"
    return line
