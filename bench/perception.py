"""Camera perception of the marker cube: pose error and detection rate by resolution, and the scripted
pick-place expert on the emulated real arm with perception only, against the same expert in the sim.

    python bench/perception.py [--frames 200] [--seeds 20] [--sizes 84,120,160,240,320,480] [--no-real]
    python bench/perception.py --only-thread [--thread-seeds 6]   # perception in the control step only

Static part: the cube at ArmPickPlace's start poses (its workspace box and yaw range), rendered by each
sim's scene camera at each size, JPEG'd as the emulator's MJPEG stream does, tracked. Baselines in the same
run: the free 6-DoF PnP (no resting-pose fit) for the error, the render time for the tracker's cost.
Episode part: `robotlearn emulate arm` in a child process, backend "real" (cube poses from the camera
only), per-episode success, the perception info each step (detection, latency, error vs the emulator's truth).
Thread part: the control thread's time in perception per step with the tracker in its worker thread (the
default) against inline in the step, alternating per seed on one emulator (ratio inline/worker at p99).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np

import robotlearn  # noqa: F401 - registers the envs
from robotlearn.backends import make_backend
from robotlearn.core.robot_config import load_robot_spec
from robotlearn.core.rotations import yaw_quat
from robotlearn.perception import tracker as tracking
from robotlearn.perception.camera_model import CameraModel
from robotlearn.teleop.scripted import PickPlaceExpert

REPO = Path(__file__).resolve().parents[1]


def workspace_states(n: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        xy = rng.uniform([0.20, -0.16], [0.34, 0.16])
        yield {"object/cube/pos": np.array([*xy, 0.02]), "object/cube/quat": yaw_quat(rng.uniform(-0.6, 0.6))}


def pct(values, q) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def static_errors(sim: str, sizes: list[int], frames: int) -> dict:
    spec = load_robot_spec("arm6")
    backend = make_backend(spec, sim)
    cube = backend.scene.objects[0]
    model = CameraModel.from_spec(spec.camera("scene"))
    out = {}
    states = list(workspace_states(frames, seed=1234))
    for size in sizes:
        rows = {"rest": [], "free": []}
        t_render = t_track = 0.0
        detected = 0
        for state in states:
            backend.reset(np.random.default_rng(0), state)
            t0 = time.perf_counter()
            image = backend.render("scene", (size, size))
            t1 = time.perf_counter()
            ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
            image = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
            true_pos, true_quat = backend.object_pose("cube")
            for variant in ("rest", "free"):
                tracker = tracking.MarkerTracker(model, [cube.fiducials],
                                                 support_height=0.0 if variant == "rest" else None)
                t2 = time.perf_counter()
                est = tracker.update(image, 0.0).get("cube")
                if variant == "rest":
                    t_track += time.perf_counter() - t2
                    detected += est is not None
                if est is not None:
                    rows[variant].append((np.linalg.norm(est.pos - true_pos) * 1e3,
                                          np.degrees(tracking.rotation_angle(est.quat, true_quat))))
            t_render += t1 - t0
        entry = {"detection_rate": detected / len(states),
                 "track_ms": 1e3 * t_track / len(states), "render_ms": 1e3 * t_render / len(states),
                 "track_over_render": t_track / max(t_render, 1e-9)}
        for variant, errs in rows.items():
            errs = np.array(errs).reshape(-1, 2)
            entry[f"{variant}_pos_mm_p50"], entry[f"{variant}_pos_mm_p95"] = pct(errs[:, 0], 50), pct(errs[:, 0], 95)
            entry[f"{variant}_rot_deg_p50"], entry[f"{variant}_rot_deg_p95"] = pct(errs[:, 1], 50), pct(errs[:, 1], 95)
        out[size] = entry
        fmt = lambda v: "  -  " if v is None else f"{v:5.1f}"  # noqa: E731
        print(f"{sim:8s} {size:4d}px  detect {entry['detection_rate']:5.1%}  pos p95 {fmt(entry['rest_pos_mm_p95'])} mm "
              f"(free PnP {fmt(entry['free_pos_mm_p95'])})  rot p95 {fmt(entry['rest_rot_deg_p95'])} deg "
              f"(free {fmt(entry['free_rot_deg_p95'])})  track {entry['track_ms']:.1f} ms = "
              f"{entry['track_over_render']:.2f}x render", flush=True)
    backend.close()
    return out


def expert_success(env, seeds, max_steps: int = 60, truth=None) -> tuple[float, list[dict], float | None]:
    """(success as the env judges it, per-step perception info, success judged on the true cube pose)."""
    wins, infos, true_wins = 0, [], 0
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        expert = PickPlaceExpert(env)
        expert.reset(obs)
        for _ in range(max_steps):
            obs, _, _, _, info = env.step(expert.act(obs))
            if "perception" in info:
                infos.append(info["perception"])
            if info["is_success"]:
                wins += 1
                break
        if truth is not None:  # the cube where it really is (the env judged its perceived pose)
            true_wins += np.linalg.norm(np.asarray(truth()) - obs["goal_pos"]) < env.unwrapped.task.tolerance
    return wins / len(seeds), infos, (true_wins / len(seeds) if truth is not None else None)


def episodes(seeds: list[int]) -> dict:
    sys.path.insert(0, str(REPO / "tests"))
    from test_real_arm import Emulator  # the child-process emulator the tests use

    sim = gym.make("robotlearn/ArmPickPlace-v0", backend="mujoco")
    sim_rate, _, _ = expert_success(sim, seeds)
    sim.close()
    emu = Emulator(Path(tempfile.mkdtemp()) / "arm", "--cameras", "scene", "--camera-fps", "10")
    try:
        real = gym.make("robotlearn/ArmPickPlace-v0", backend="real", port=str(emu.link))
        try:
            t0 = time.perf_counter()
            from robotlearn.hardware.scene_oracle import side_channel_request

            address = tuple(emu.info["side_channel"])
            real_rate, infos, true_rate = expert_success(real, seeds, truth=lambda: side_channel_request(
                address, {"op": "object_pose", "name": "cube"})["pos"])
            seconds = time.perf_counter() - t0
        finally:
            real.close()
    finally:
        emu.stop()
    visible = [i["cube/visible"] for i in infos]
    latency = [i["latency_s"] for i in infos]
    err_visible = [i["cube/pos_error_m"] * 1e3 for i in infos if i["cube/visible"]]
    rot_visible = [i["cube/rot_error_deg"] for i in infos if i["cube/visible"]]
    result = {"sim_success": sim_rate, "real_perception_success": real_rate, "real_true_success": true_rate, "gap_points": 100 * (sim_rate - real_rate),
              "steps": len(infos), "visible_fraction_in_episodes": float(np.mean(visible)) if visible else None,
              "latency_ms_p50": 1e3 * pct(latency, 50), "latency_ms_p95": 1e3 * pct(latency, 95),
              "pos_error_mm_p95_when_visible": pct(err_visible, 95), "rot_error_deg_p95_when_visible": pct(rot_visible, 95),
              "real_seconds": seconds}
    print(f"expert over {len(seeds)} seeds: mujoco {sim_rate:.0%}, emulated real arm (camera perception only) "
          f"{real_rate:.0%} (on the true cube pose {true_rate:.0%}); cube visible in {result['visible_fraction_in_episodes']:.0%} of steps (the gripper hides "
          f"it while carrying), latency p50 {result['latency_ms_p50']:.0f} ms p95 {result['latency_ms_p95']:.0f} ms, "
          f"pos error p95 when visible {result['pos_error_mm_p95_when_visible']:.1f} mm (moving cube: includes latency)",
          flush=True)
    return result


def perception_on_the_step(seeds: list[int]) -> dict:
    """The control thread's perception time per step, worker thread vs inline, alternating per seed
    (the first mode flips each seed) on one emulator, with the expert's success and the loop's late ticks."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_real_arm import Emulator

    modes = {"worker": [], "inline": []}
    stats = {m: {"success": 0, "late_ticks": 0, "steps": 0} for m in modes}
    emu = Emulator(Path(tempfile.mkdtemp()) / "arm", "--cameras", "scene", "--camera-fps", "10")
    try:
        for k, seed in enumerate(seeds):
            for mode in (("worker", "inline") if k % 2 == 0 else ("inline", "worker")):
                env = gym.make("robotlearn/ArmPickPlace-v0", backend="real", backend_options={
                    "port": str(emu.link), "overrides": [f"perception_thread={str(mode == 'worker').lower()}"]})
                try:
                    backend = env.unwrapped.backend
                    obs, _ = env.reset(seed=seed)
                    perception = backend._object_perception()
                    refresh = perception.refresh

                    def timed(*args, _refresh=refresh, _mode=mode, **kw):
                        t0 = time.perf_counter()
                        try:
                            return _refresh(*args, **kw)
                        finally:
                            modes[_mode].append(time.perf_counter() - t0)

                    perception.refresh = timed
                    expert = PickPlaceExpert(env)
                    expert.reset(obs)
                    for _ in range(60):
                        obs, _, _, _, info = env.step(expert.act(obs))
                        stats[mode]["steps"] += 1
                        if info["is_success"]:
                            stats[mode]["success"] += 1
                            break
                    stats[mode]["late_ticks"] += info["loop_stats"]["late_ticks"]
                finally:
                    env.close()
    finally:
        emu.stop()
    out = {}
    for mode, times in modes.items():
        ms = 1e3 * np.asarray(times)
        out[mode] = {"refresh_ms_p50": float(np.percentile(ms, 50)), "refresh_ms_p99": float(np.percentile(ms, 99)),
                     "refresh_ms_max": float(ms.max()), "success_rate": stats[mode]["success"] / len(seeds),
                     "late_ticks_per_100_steps": 100 * stats[mode]["late_ticks"] / max(stats[mode]["steps"], 1)}
    out["p99_ratio_inline_over_worker"] = out["inline"]["refresh_ms_p99"] / max(out["worker"]["refresh_ms_p99"], 1e-6)
    print(f"perception in the control step over {len(seeds)} seeds per mode (alternating): refresh p50/p99 "
          f"worker {out['worker']['refresh_ms_p50']:.2f}/{out['worker']['refresh_ms_p99']:.2f} ms, inline "
          f"{out['inline']['refresh_ms_p50']:.2f}/{out['inline']['refresh_ms_p99']:.2f} ms; late ticks per 100 steps "
          f"worker {out['worker']['late_ticks_per_100_steps']:.1f}, inline {out['inline']['late_ticks_per_100_steps']:.1f}; "
          f"success worker {out['worker']['success_rate']:.0%}, inline {out['inline']['success_rate']:.0%}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1000, help="episode seeds start here (not used in tests)")
    parser.add_argument("--sizes", default="84,120,160,240,320,480")
    parser.add_argument("--sims", default="mujoco,pybullet")
    parser.add_argument("--no-real", action="store_true", help="skip the emulated-arm episodes")
    parser.add_argument("--thread-seeds", type=int, default=6,
                        help="seeds per mode for the worker-thread vs inline comparison (0: skip)")
    parser.add_argument("--only-thread", action="store_true", help="run only the worker-thread vs inline comparison")
    args = parser.parse_args()
    if args.only_thread:
        load = Path("/proc/loadavg").read_text().split()[:3]
        result = {"load_before": load, "thread": perception_on_the_step(list(range(args.first_seed, args.first_seed + args.thread_seeds)))}
        result["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
        print(json.dumps(result))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    result = {"load_before": Path("/proc/loadavg").read_text().split()[:3],
              "static": {sim: static_errors(sim, sizes, args.frames) for sim in args.sims.split(",")}}
    if not args.no_real:
        result["episodes"] = episodes(list(range(args.first_seed, args.first_seed + args.seeds)))
        if args.thread_seeds:
            result["thread"] = perception_on_the_step(list(range(args.first_seed, args.first_seed + args.thread_seeds)))
    result["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
