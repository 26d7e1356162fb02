"""Estimation: CMA-ES over the multi-step sim-vs-measured discrepancy, then its uncertainty.

* The **loss** is the mean squared error of the segment replays (simulate.py): joint positions (rad), and
  present current scaled to the same noise floor where the recording has it (simulate.EFFORT_WEIGHT).
* **CMA-ES** (the `cmaes` package) searches the registry's unit cube (log axes for scales), starting at
  the prior. It needs no gradients, which matters here: contact-free but friction- and latency-quantized
  sims have a piecewise-flat loss that finite-difference gradient methods stall on.
  It runs `restarts` times from the prior with different seeds and keeps the best: on one of twelve
  recordings of the emulated arm, seed 0 settled in a valley with the servo gains 14 % low (rms 3.8 mrad
  against 1.0 from seed 1, which recovered every scale within 1.7 %).
* **Gauss-Newton polish** (Levenberg-Marquardt steps on the finite-difference Jacobian) from CMA-ES's
  best point: the loss is a sum of squares, and near the optimum its valleys are long and correlated
  (servo stiffness against damping against payload), where CMA-ES with a small budget crawls and a few
  Gauss-Newton steps land. It runs twice, its latency differences first over a physics tick, then finer
  (`_fd_steps` says why). The Jacobian of the last step is also the one the uncertainty needs.
* The **uncertainty** is the Laplace / Gauss-Newton covariance at the optimum, s^2 (J^T J)^-1, with J the
  finite-difference Jacobian of the residuals and s^2 the residual variance. CMA-ES's own covariance
  describes its search distribution, not the data's information, so it is not used as an error bar.
* **Outlier segments** are left out of a second polish and of the uncertainty: at the first polish's
  optimum, a segment whose mean squared residual is many times the median segment's holds something no
  parameter explains (the emulated robot's physics fell behind real time on a loaded machine while the
  host kept its ticks; on a real arm a bump, a snagged cable, a hand on a link). Least squares gives such a
  segment the weight of its square. They are named in the result, never dropped silently, and when too many
  segments stand out the data are kept whole: then it is the model that is wrong.
* **Identifiability** is checked before fitting, with the same Jacobian at the prior (the Fisher
  information of the recording under a noise floor): parameters whose predicted standard deviation
  exceeds `max_rel_std` of their value cannot be estimated from these data; fitting stops with an error
  naming them, instead of returning noise as an estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from robotlearn.sysid.registry import Registry
from robotlearn.sysid.simulate import NOISE_FLOOR, Replayer


class NotIdentifiable(ValueError):
    """The recording carries too little information about some parameters."""


def _fd_steps(registry: Registry, replayer: Replayer, fine: bool) -> np.ndarray:
    """Unit-space finite-difference steps: 2 % of the range; for latency one physics tick, or with `fine` the
    replayer's `latency_step_s`.

    An arm replay interpolates latency between physics ticks, so its residual is piecewise linear in latency,
    kinked wherever the round trip crosses a tick. A difference over a tick smooths the kinks: from far off
    it points the way. Near the optimum it averages slopes of pieces the optimum is not on: on a 30 s
    recording of the emulated arm the polish stalled at 9.8x the truth's loss with a 2 ms step (a tick) and at
    7.5x with 0.8 ms (2 % of the range), and reached the truth (every parameter within 1.5 %) with 0.2 ms.
    The quadrotor sims round latency to ticks, where a step under one tick sees no change (their
    `latency_step_s` is a tick)."""
    steps = []
    for p in registry.parameters:
        span = p.upper - p.lower
        if p.name != "latency_s":
            steps.append(0.02)
        elif fine:
            steps.append(replayer.latency_step_s / span)
        else:
            steps.append(max(0.02, 1.0 / replayer.spec.physics_hz / span))
    return np.array(steps)


def jacobian(replayer: Replayer, registry: Registry, u: np.ndarray,
             tick: Callable[[], None] | None = None, fine: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(residual at u, d residual / d value) by central differences (`fine`: see `_fd_steps`); residuals
    are flattened positions."""
    base = replayer.simulate(registry.to_params(registry.from_unit(u))).ravel()
    if tick:
        tick()
    h = _fd_steps(registry, replayer, fine)
    columns = []
    for i in range(len(u)):
        lo, hi = u.copy(), u.copy()
        lo[i], hi[i] = max(0.0, u[i] - h[i]), min(1.0, u[i] + h[i])
        v_lo, v_hi = registry.from_unit(lo)[i], registry.from_unit(hi)[i]
        sims = []
        for point in (lo, hi):
            sims.append(replayer.simulate(registry.to_params(registry.from_unit(point))).ravel())
            if tick:
                tick()
        columns.append((sims[1] - sims[0]) / (v_hi - v_lo))
    return base, np.stack(columns, axis=1)


#: a direction of the normalized information whose eigenvalue is below this fraction of the largest is a
#: degeneracy (two parameters with correlation > 1 - 1e-6: thrust and mass of a quadrotor), not information:
#: its finite value comes from finite-difference error, so the parameters along it get an infinite std
DEGENERATE = 1e-6


def parameter_std(jac: np.ndarray, noise_var: float) -> np.ndarray:
    """Marginal standard deviations of the parameters, sqrt(diag(noise_var (J^T J)^-1)); inf for the
    parameters of a degenerate direction (see DEGENERATE)."""
    info = jac.T @ jac
    scale = np.sqrt(np.maximum(np.diag(info), 1e-300))
    normalized = info / np.outer(scale, scale)  # conditioning: each parameter on its own sensitivity
    w, vectors = np.linalg.eigh(normalized)
    weights = np.where(vectors**2 > 1e-6, vectors**2, 0.0)  # drop eigenvector round-off
    inverse = np.where(w > DEGENERATE * max(w.max(), 1e-300), 1.0 / np.maximum(w, 1e-300), np.inf)
    var = np.where(weights > 0, weights * inverse[None, :], 0.0).sum(axis=1) / scale**2
    return np.sqrt(var * noise_var)


def worst_relative_std(jac: np.ndarray, registry: Registry) -> float:
    """A design's score for active excitation (lower is better): the largest predicted std, relative to
    its value, of the fitted scales at the noise floor. Minimax rather than D-optimal (log det): what a
    fit has to meet is every parameter within a tolerance, and log det grows with information on the
    parameters that are already well determined (the gains: 0.3 %) while the link masses (4-5 %) stay
    where they were; on arm6 the D-optimal picks of eight candidates left the masses' std no better than a
    plain random design's. Latency and backlash, the additive ones, come out at 0.04-0.15 ms and mrad per
    5 s period in every candidate, far inside their tolerances, so they do not decide."""
    scales = np.array([p.log for p in registry.parameters])
    unit = np.array([max(p.prior, 1e-9) if p.log else 1.0 for p in registry.parameters])
    return float(parameter_std(jac * unit[None, :], NOISE_FLOOR**2)[scales].max())


def unidentifiable(registry: Registry, values: np.ndarray, std: np.ndarray, max_rel_std: float) -> list[str]:
    """Parameters whose std exceeds `max_rel_std` of their value (scales); for additive ones (latency,
    backlash, wind: linear axes) of a quarter of their range (latency: 10 ms, so 1 ms std at the default 0.1)."""
    ref = np.array([abs(v) if p.log else 0.25 * (p.upper - p.lower)
                    for p, v in zip(registry.parameters, values, strict=True)])
    return [p.name for p, s, r in zip(registry.parameters, std, ref, strict=True) if not s <= max_rel_std * r]


#: a segment whose mean squared residual at the first polish's optimum exceeds this multiple of the median
#: segment's is an outlier (its rms is over 5x the median's). Replayed at the truth, six 30 s recordings of the emulated arm
#: spread their segments' mean squares over 0.0-10.5x the median (fast segments leave more), and a recording
#: during which the emulator's physics fell up to 52 ms behind had segments at 81x and 298x
OUTLIER_RATIO = 25.0
#: outliers are left out only while they are under this share of the segments: the median that judges them
#: holds while they are a minority
MAX_OUTLIER_SHARE = 0.5


def outlier_segments(residual: np.ndarray, lengths: Sequence[int], ratio: float = OUTLIER_RATIO,
                     max_share: float = MAX_OUTLIER_SHARE) -> np.ndarray:
    """(segments,) bool: segments (of `lengths` residual rows each, in order) whose mean squared residual is
    over `ratio` x the median segment's; none unless they are under `max_share` of them (else a model error)."""
    rows = np.asarray(residual).reshape(int(sum(lengths)), -1)
    chunks = np.split(rows, np.cumsum(lengths)[:-1])
    mean_square = np.array([np.mean(chunk**2) for chunk in chunks])
    outliers = mean_square > ratio * np.median(mean_square)
    return outliers if outliers.mean() < max_share else np.zeros_like(outliers)


class _Rows:
    """A replayer whose residual keeps only some rows (the inlier segments' steps)."""

    def __init__(self, replayer, rows: np.ndarray):
        self.replayer, self.rows = replayer, rows
        self.spec, self.latency_step_s = replayer.spec, replayer.latency_step_s

    def simulate(self, params) -> np.ndarray:
        return self.replayer.simulate(params)[self.rows]


def polish(replayer: Replayer, registry: Registry, u: np.ndarray, measured: np.ndarray, steps: int,
           tick: Callable[[], None] | None = None, fine: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Levenberg-Marquardt from `u` (unit space), its Jacobian `fine` or not (`_fd_steps`); returns
    (u, simulated residual base, Jacobian at u)."""
    lower = np.array([p.lower for p in registry.parameters])
    upper = np.array([p.upper for p in registry.parameters])
    sim, jac = jacobian(replayer, registry, u, tick, fine)
    cost = float(np.sum((sim - measured) ** 2))
    damping = 1e-3
    for _ in range(steps):
        residual = sim - measured
        normal = jac.T @ jac
        scale = np.diag(normal) + 1e-30
        while True:
            step = np.linalg.solve(normal + damping * np.diag(scale), -jac.T @ residual)
            values = np.clip(registry.from_unit(u) + step, lower, upper)
            trial_u = registry.to_unit(values)
            trial = replayer.simulate(registry.to_params(values)).ravel()
            if tick:
                tick()
            trial_cost = float(np.sum((trial - measured) ** 2))
            if trial_cost < cost or damping > 1e3:
                break
            damping *= 10.0
        if trial_cost >= cost:
            break
        damping = max(damping / 10.0, 1e-6)
        u, cost = trial_u, trial_cost
        sim, jac = jacobian(replayer, registry, u, tick, fine)
    return u, sim, jac


@dataclass
class FitResult:
    names: list[str]
    estimate: np.ndarray
    std: np.ndarray
    loss: float                 # mean squared residual at the estimate (rad^2, effort in rad-equivalents)
    prior_loss: float           # ... at the prior (the nominal sim)
    history: list[float] = field(default_factory=list)  # best loss per generation
    evaluations: int = 0
    weak: list[str] = field(default_factory=list)  # poorly determined even after the fit
    #: segments left out as outliers: (start step, steps)
    outliers: list[tuple[int, int]] = field(default_factory=list)
    #: CMA-ES's best loss in each restart (the best of them is polished)
    restart_losses: list[float] = field(default_factory=list)


def fit(replayer: Replayer, registry: Registry, generations: int = 30, popsize: int | None = None, seed: int = 0,
        max_rel_std: float = 0.1, check: bool = True, polish_steps: int = 4, progress: bool = True,
        restarts: int = 1) -> FitResult:
    """Estimate `registry`'s parameters from `replayer`'s recording (see the module docstring)."""
    from cmaes import CMA
    from tqdm import tqdm

    if restarts < 1:
        raise ValueError(f"--restarts must be at least 1, got {restarts}")
    measured_rows = replayer.measured
    measured = measured_rows.ravel()
    dim = len(registry.parameters)
    pop = popsize or 4 + int(3 * np.log(dim))
    n_fd = 2 * dim + 1
    total = (n_fd if check else 0) + restarts * generations * pop + 2 * (polish_steps + 1) * (n_fd + 1)
    bar = tqdm(total=total, desc="sysid fit", unit="sim", disable=not progress, dynamic_ncols=True, leave=False)
    try:
        u0 = registry.to_unit(registry.prior)
        if check:
            sim0, jac0 = jacobian(replayer, registry, u0, lambda: bar.update(1))
            std0 = parameter_std(jac0, NOISE_FLOOR**2)
            bad = unidentifiable(registry, registry.prior, std0, max_rel_std)
            if bad:
                detail = ", ".join(f"{n} (std {s:.2g})" for n, s in zip(registry.names, std0, strict=True) if n in bad)
                raise NotIdentifiable(f"the data are not informative about {detail}; excite those joints more "
                                      "(--excite active, longer --seconds) or leave them out with --params")
        else:
            sim0 = replayer.simulate(registry.to_params(registry.prior)).ravel()
        prior_residual = (sim0 - measured).reshape(measured_rows.shape)
        prior_loss = float(np.mean(prior_residual**2))

        def loss(u: np.ndarray) -> float:
            value = float(np.mean((replayer.simulate(registry.to_params(registry.from_unit(u))).ravel()
                                   - measured) ** 2))
            bar.update(1)
            return value

        bounds = np.tile([0.0, 1.0], (dim, 1))
        best_u, best = u0.copy(), prior_loss
        history, restart_losses = [], []
        for restart in range(restarts):
            opt = CMA(mean=u0, sigma=0.2, bounds=bounds, seed=seed + restart, population_size=pop)
            restart_best = prior_loss
            for _ in range(generations):
                solutions = []
                for _ in range(opt.population_size):
                    u = opt.ask()
                    value = loss(u)
                    solutions.append((u, value))
                    restart_best = min(restart_best, value)
                    if value < best:
                        best_u, best = u.copy(), value
                opt.tell(solutions)
                history.append(best)
                bar.set_postfix(loss=f"{best:.3g}")
                if opt.should_stop():
                    break
            restart_losses.append(restart_best)
        # Two polishes: coarse (latency over a tick) from CMA-ES's best, then fine on the segments that are not
        # outliers at the first one's optimum (_fd_steps says why both).
        best_u, sim, jac = polish(replayer, registry, best_u, measured, polish_steps, lambda: bar.update(1))
        lengths = [length for _, length in replayer.segments]
        left_out = outlier_segments((sim - measured).reshape(measured_rows.shape), lengths)
        rows = np.repeat(~left_out, lengths)
        measured = measured_rows[rows].ravel()
        best_u, sim, jac = polish(_Rows(replayer, rows), registry, best_u, measured, polish_steps,
                                  lambda: bar.update(1), fine=True)
        prior_loss = float(np.mean(prior_residual[rows] ** 2))
        residual = sim - measured
        noise_var = max(float(residual @ residual) / max(1, residual.size - dim), NOISE_FLOOR**2 / 100)
        estimate = registry.from_unit(best_u)
        std = parameter_std(jac, noise_var)
        return FitResult(registry.names, estimate, std, float(np.mean(residual**2)), prior_loss, history,
                         replayer.evaluations, unidentifiable(registry, estimate, std, max_rel_std),
                         [segment for segment, out in zip(replayer.segments, left_out, strict=True) if out],
                         restart_losses)
    finally:
        bar.close()
