"""`robotlearn sysid collect|fit|report`: identify a robot's physical parameters, write a calib.yaml."""

from __future__ import annotations

import argparse

from robotlearn.cli.common import add_backend_arguments, backend_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    c = sub.add_parser("collect", help="excite the arm through its driver and record commands and states",
                       formatter_class=parser.formatter_class)
    add_backend_arguments(c)
    c.add_argument("--excite", choices=("random", "active"), default="random",
                   help="random multisine, or the most informative of several (Fisher information in sim)")
    c.add_argument("--seconds", type=float, default=30.0, help="excitation length (after a 1 s settle)")
    c.add_argument("--out", required=True, help="recording folder")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--design-sim", default="mujoco", help="sim that ranks active designs")
    c.add_argument("--robot", default="arm6",
                   help="arm6 (joint multisines), or a quadrotor (cf2x, iris: thrust and rate doublets around hover)")
    f = sub.add_parser("fit", help="estimate the parameters in a sim, write calib.yaml",
                       formatter_class=parser.formatter_class)
    f.add_argument("data", help="a `sysid collect` folder")
    f.add_argument("--sim", default="mujoco", help="mujoco | pybullet")
    f.add_argument("--out", required=True, help="calib.yaml to write")
    f.add_argument("--sim-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="sim backend option, e.g. calibration=calib.yaml (the sims already run the robot config's interpolation, as the real arm does)")
    f.add_argument("--params", help="comma-separated parameters (default: those configs/sysid/<kind>.yaml fits)")
    f.add_argument("--generations", type=int, default=12, help="CMA-ES generations (per restart)")
    f.add_argument("--restarts", type=int, default=2,
                   help="CMA-ES runs from the prior with different seeds; the best is polished")
    f.add_argument("--polish", type=int, default=4, help="Gauss-Newton steps in each of the two polishes after CMA-ES")
    f.add_argument("--horizon", type=float, help="seconds replayed from each recorded state (default: arm 2, quadrotor 1)")
    f.add_argument("--seconds", type=float, help="use only the first SECONDS of the recording")
    f.add_argument("--max-rel-std", type=float, default=0.1,
                   help="a parameter whose predicted std exceeds this fraction of its value is unidentifiable")
    f.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("report", help="overlay plots (measured / nominal / calibrated) and a parameter table",
                       formatter_class=parser.formatter_class)
    r.add_argument("data", help="a `sysid collect` folder")
    r.add_argument("--calibration", required=True, help="calib.yaml from `sysid fit`")
    r.add_argument("--truth", help="ground truth with the same keys (e.g. configs/hardware/reality_gap.yaml)")
    r.add_argument("--sim", default="mujoco")
    r.add_argument("--sim-opt", action="append", default=[], metavar="KEY=VALUE", help="as for fit")
    r.add_argument("--params", help="comma-separated parameters for the table (default: those fit)")
    r.add_argument("--out", required=True, help="report folder")


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def _options(items: list[str]) -> dict:
    from robotlearn.core.config import parse_overrides

    return parse_overrides(items)


def run(args: argparse.Namespace) -> int:
    if args.action == "collect":
        from robotlearn.core.robot_config import load_robot_spec

        if load_robot_spec(args.robot).kind == "quadrotor":
            from robotlearn.sysid.quad import collect_quad

            if args.excite != "random":
                raise ValueError("--excite active is implemented for arms only; quadrotors fly random doublets")
            data = collect_quad(args.backend, backend_options(args), args.seconds, args.seed, args.robot)
        else:
            from robotlearn.sysid.collect import collect

            data = collect(args.backend, backend_options(args), args.seconds, args.excite, args.seed, args.design_sim)
        data.save(args.out)
        print(f"sysid: {args.seconds:.1f} s of {args.excite} excitation (+1 s settle) on {args.backend} -> {args.out}")
        from robotlearn.sysid.active import design_summary

        if design := design_summary(data.meta):
            print(f"sysid: {design}")
        if timing := data.meta.get("timing"):
            print(f"sysid: loop timing: state age at the tick p50 {timing['state_age_ms_p50']:.2f} ms, p99 "
                  f"{timing['state_age_ms_p99']:.2f} ms, max {timing['state_age_ms_max']:.1f} ms, "
                  f"{timing['overruns']} overruns")
        if getattr(data, "timestamps", None) is not None and (missed := int((~data.regular_steps()).sum())):
            print(f"sysid: {missed} of {len(data.commands)} steps did not last one control period (the host "
                  "missed its tick, or read no new sample); fits leave them out")
        return 0

    from robotlearn.sysid.data import load_sysid_data
    from robotlearn.sysid.registry import load_registry

    data = load_sysid_data(args.data)
    quad = data.meta.get("kind") == "quadrotor"
    if args.action == "fit":
        from robotlearn.sysid.calib import calibration_of, write_calibration
        from robotlearn.sysid.estimator import OUTLIER_RATIO, fit

        if args.seconds:
            data = data.head(args.seconds)
        registry = load_registry("quadrotor" if quad else "arm", _names(args.params))
        if quad:
            from robotlearn.sysid.quad import QuadReplayer

            replayer = QuadReplayer(data, args.sim, args.horizon or 1.0, sim_options=_options(args.sim_opt))
        else:
            from robotlearn.sysid.simulate import Replayer

            replayer = Replayer(data, args.sim, args.horizon or 2.0, sim_options=_options(args.sim_opt))
        try:
            result = fit(replayer, registry, args.generations, seed=args.seed, max_rel_std=args.max_rel_std,
                         polish_steps=args.polish, restarts=args.restarts)
        finally:
            replayer.close()
        calib = calibration_of(result, registry, {"data": str(args.data), "sim": args.sim,
                                                  "seconds": data.seconds, "excite": data.meta.get("excite"),
                                                  "sim_options": _options(args.sim_opt)})
        write_calibration(calib, args.out)
        for name, value, std in zip(result.names, result.estimate, result.std, strict=True):
            print(f"  {name:34s} {value:.4f} +- {std:.4f}")
        if result.outliers:
            spans = ", ".join(f"{s / data.control_hz:.1f}-{(s + n) / data.control_hz:.1f} s" for s, n in result.outliers)
            print(f"sysid: left out {len(result.outliers)} of {len(replayer.segments)} segments whose rms residual "
                  f"at the fit was over {OUTLIER_RATIO ** 0.5:g}x the median's ({spans}): something no parameter "
                  "explains happened there (a stall, a bump, a contact)")
        weak = f"; weakly identified: {', '.join(result.weak)}" if result.weak else ""
        unit = "mm/s (velocity, 0.1 x rates)" if quad else "mrad"
        if len(result.restart_losses) > 1:
            print("sysid: CMA-ES restarts reached rms " + ", ".join(f"{v ** 0.5 * 1e3:.2f}" for v in result.restart_losses)
                  + f" {unit} (the best was polished)")
        print(f"sysid: rms {result.prior_loss ** 0.5 * 1e3:.2f} -> {result.loss ** 0.5 * 1e3:.2f} {unit} "
              f"({result.evaluations} sims){weak} -> {args.out}")
        return 0
    if quad:
        raise ValueError("sysid report draws arm joint overlays; for a quadrotor recording read the fit's "
                         "calib.yaml (its sysid block has the losses)")

    from robotlearn.sim.physical import load_calibration
    from robotlearn.sysid.report import markdown, write_report

    calibration = load_calibration(args.calibration, "arm")
    names = _names(args.params) or calibration.sysid.get("fit")
    summary = write_report(data, calibration, load_registry("arm", names), args.out, args.sim, args.truth,
                           _options(args.sim_opt) or calibration.sysid.get("sim_options"))
    print(markdown(summary["parameters"]))
    rms = summary["rms"]
    print(f"sysid report: rms nominal {rms['nominal_rad'] * 1e3:.2f} mrad, calibrated "
          f"{rms['calibrated_rad'] * 1e3:.2f} mrad -> {args.out}")
    return 0
