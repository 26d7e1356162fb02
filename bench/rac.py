"""RaC benchmark on robotlearn/ArmStack-v0: success after each round for (a) RaC (rewind + correction, Rule 2),
(b) the ``continue`` variant (HG-DAgger: the operator corrects, then hands back), (c) spending the same operator
time on more full demos — all from one shared round 0 (the same demos, the same round-0 policy).

The operator is the simulated one (failure predictor on privileged sim state, assisted rewind, scripted-expert
correction); operator time is seconds of operator control (demos: their length). Each point is evaluated on
the same ``--eval-episodes`` seeds. Baseline: the full-demo variant at equal operator time; ratios are
RaC's success over it and over HG-DAgger's, and RaC's operator time over what the demo variant spent to reach
its best success. Also: recovery:correction ratio (seconds) and retries (interventions) per successful
episode. The last line is one JSON object; ``--out`` keeps run folders for ``robotlearn rac report``.

    python bench/rac.py --out /tmp/rac-bench --demos 8 --rounds 2 --episodes 6 --train-steps 800 \\
        --finetune-steps 300 --eval-episodes 50
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from robotlearn.correction.loop import RunConfig, later_rounds, round_zero
from robotlearn.rollout import EnvRecipe


def _fork(base: Path, out: Path) -> None:
    """A variant starts from round 0's dataset and checkpoint (copied: each variant appends its own rounds)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("dataset", "round-0"):
        shutil.copytree(base / name, out / name, dirs_exist_ok=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--backend", default="mujoco")
    parser.add_argument("--demos", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=6, help="RaC / HG-DAgger rollouts per round")
    parser.add_argument("--train-steps", type=int, default=800)
    parser.add_argument("--finetune-steps", type=int, default=300)
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rewind-speed", type=float, default=1.0, help="RaC's assisted rewind speed (0, 1]")
    parser.add_argument("--rewind-max-s", type=float, default=1.5, help="how far back RaC's rewind may go")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="task config override, e.g. max_episode_steps=100")
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists; give a new --out")
    t0 = time.monotonic()
    base_cfg = RunConfig(env=EnvRecipe("ArmStack-v0", args.backend, overrides=tuple(args.override)).to_dict(), demos=args.demos, rounds=args.rounds,
                         episodes_per_round=args.episodes, train_steps=args.train_steps,
                         finetune_steps=args.finetune_steps, eval_episodes=args.eval_episodes, seed=args.seed,
                         train_overrides=[f"train.batch_size={args.batch_size}"], rewind_speed=args.rewind_speed,
                         rewind_max_s=args.rewind_max_s)

    def log(line: str) -> None:
        print(f"[{time.monotonic() - t0:6.0f}s] {line}", flush=True)

    base = round_zero(base_cfg, out / "base", log=log, progress=False)
    demo_s_each = base["rounds"][0]["demo_s"] / args.demos
    runs = {}
    for name, mode, rewind in (("rac", "rac", True), ("hgdagger", "continue", False)):
        _fork(out / "base", out / name)
        cfg = RunConfig(**{**base_cfg.__dict__, "mode": mode, "rewind": rewind})
        runs[name] = later_rounds(cfg, out / name, base, log=log, progress=False)
    # (c) the same operator time as RaC's rounds, spent on full demos
    per_round = [max(1, round(r["round_operator_s"] / demo_s_each)) for r in runs["rac"]["rounds"][1:]]
    _fork(out / "base", out / "demos")
    cfg = RunConfig(**{**base_cfg.__dict__, "mode": "demos", "demos_per_round": per_round})
    runs["demos"] = later_rounds(cfg, out / "demos", base, log=log, progress=False)

    def series(name: str) -> list[dict]:
        return [{"round": r["round"], "success": r["success"], "subtasks": round(r["subtasks"], 2),
                 "operator_min": round(r["operator_s"] / 60, 2)} for r in runs[name]["rounds"]]

    rac_rounds = runs["rac"]["rounds"][1:]
    rewind_s = sum(r["rewind_s"] for r in rac_rounds)
    correction_s = sum(r["correction_s"] for r in rac_rounds)
    last = {name: runs[name]["rounds"][-1] for name in runs}
    best_demo = max(runs["demos"]["rounds"], key=lambda r: r["success"])
    # (None when the demo variant never succeeded: matching 0 % says nothing)
    reach = [r for r in runs["rac"]["rounds"] if r["success"] >= best_demo["success"] > 0]
    for name in runs:
        print(f"{name:9s}", "  ".join(f"r{r['round']}: {r['success']:.2f} ({r['subtasks']:.1f} sub-tasks) "
                                      f"@ {r['operator_min']:.1f} min"
                                      for r in series(name)))
    print(f"RaC recovery:correction = {rewind_s:.0f}:{correction_s:.0f} s; retries per successful episode "
          f"{[round(r['retries_per_success'], 2) for r in rac_rounds]}; failure triggers "
          f"{[r['failure_reasons'] for r in rac_rounds]}")
    summary = {
        "bench": "rac", "env": "robotlearn/ArmStack-v0", "backend": args.backend, "overrides": args.override, "demos": args.demos,
        "rounds": args.rounds, "episodes_per_round": args.episodes, "eval_episodes": args.eval_episodes,
        "train_steps": args.train_steps, "finetune_steps": args.finetune_steps,
        "series": {name: series(name) for name in runs},
        "demos_per_round_for_equal_time": per_round,
        "success_minus_demos_at_equal_time": round(last["rac"]["success"] - last["demos"]["success"], 3),
        "success_minus_hgdagger": round(last["rac"]["success"] - last["hgdagger"]["success"], 3),
        "rac_operator_time_over_demos_best": (round(reach[0]["operator_s"] / best_demo["operator_s"], 3)
                                              if reach else None),
        "recovery_to_correction_s": [round(rewind_s, 1), round(correction_s, 1)],
        "retries_per_successful_episode": [round(r["retries_per_success"], 2) for r in rac_rounds],
        "wall_s": round(time.monotonic() - t0),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
