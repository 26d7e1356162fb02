"""Active excitation: rank candidate designs by the Fisher information they would carry (in sim).

For each candidate, one multisine period (plus the settle) is simulated on the nominal sim, the
recording that sim would produce is replayed with finite-difference perturbations of every registry
parameter (estimator.jacobian), and the design with the largest log det of the information wins.
"""

from __future__ import annotations

import numpy as np

from robotlearn.backends import make_backend
from robotlearn.core.spec import RobotSpec
from robotlearn.sysid.data import SysidData
from robotlearn.sysid.estimator import jacobian, log_det_information
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


def most_informative(designs: list[Multisine], spec: RobotSpec, robot, sim: str = "mujoco",
                     registry=None, progress: bool = True) -> tuple[int, list[float]]:
    """Index of the D-optimal design and every design's log det (one period each)."""
    from tqdm import tqdm

    registry = registry or load_registry(spec.kind)
    scores = []
    for design in tqdm(designs, desc="active design", unit="design", disable=not progress, leave=False):
        data = nominal_recording(design, spec, robot, sim, PERIOD_S)
        replayer = Replayer(data, sim)
        try:
            _, jac = jacobian(replayer, registry, registry.to_unit(registry.prior))
        finally:
            replayer.close()
        scores.append(log_det_information(jac, registry))
    return int(np.argmax(scores)), scores
