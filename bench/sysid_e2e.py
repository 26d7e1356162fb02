"""End to end on a quadrotor whose reality gap hurts: a hover policy trained on the nominal sim against one
trained on the sysid-calibrated sim, both flown on the emulated vehicle over MAVLink (production driver).

1. Start `robotlearn emulate quadrotor` with a harsh hidden gap (--gap quad_gap plus HURT: 15 % heavier,
   8 % weaker props, more drag, 20 ms latency, a breeze): hover needs 25 % more thrust than nominal.
2. `sysid`: fly the thrust/rate doublets through the driver, fit thrust/drag per unit mass, latency and
   wind on MuJoCo, write calib.yaml.
3. Train two hover policies the same way, one on the nominal MuJoCo sim and one on the calibrated one:
   an MLP behaviour-cloned from the cascaded expert (QuadExpert) flying QuadHover-v0 in that sim. The
   expert's velocity integrator absorbs the sim's trim while it flies, but the MLP sees only the
   observation, so it learns the trim of the sim it was trained in: exactly what a sim gap breaks.
   (Behaviour cloning rather than SAC keeps the bench to minutes on two shared cores; the gap acts on the
   learned policy the same way.)
4. Evaluate each policy in its own sim and on the emulated vehicle: success rate (final distance < 0.1 m)
   and hover error (mean distance to the goal over the last 2 s of each 5 s episode).

Baseline of the ratios: the nominal-trained policy on the emulated vehicle, measured in the same run.
Last line: one JSON object.

    python bench/sysid_e2e.py --episodes 6
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from udp_port import free_udp_port

from robotlearn.envs import make_env
from robotlearn.rollout import ActionSource, CallbackSink, Rollout
from robotlearn.sysid.calib import calibration_of, write_calibration
from robotlearn.sysid.estimator import fit
from robotlearn.sysid.quad import QuadReplayer, collect_quad
from robotlearn.sysid.registry import load_registry
from robotlearn.teleop.quad_expert import QuadExpert

HURT = ["mass_scale=1.15", "thrust_scale=0.92", "drag_scale=1.5", "latency_s=0.02", "wind=[0.4,-0.3,0.0]"]
OBS_KEYS = ("pos", "vel", "quat", "omega", "goal_pos")
EVAL_OVERRIDES = ["params.init_pos_range=0.3", "params.init_vel_range=0.0", "params.init_tilt=0.0"]


def features(obs: dict[str, np.ndarray]) -> np.ndarray:
    x = np.concatenate([np.asarray(obs[k], dtype=np.float32).ravel() for k in OBS_KEYS])
    x[:3] -= np.asarray(obs["goal_pos"], dtype=np.float32)  # goal-relative position
    return x


class ExpertSource(ActionSource):
    label = "expert"

    def __init__(self, env):
        self.expert = QuadExpert(env)

    def reset(self, obs) -> None:
        self.expert.reset(obs)

    def act(self, obs):
        return self.expert.act(obs), self.label


class MlpSource(ActionSource):
    def __init__(self, net: nn.Module):
        self.net = net

    def act(self, obs):
        with torch.no_grad():
            a = self.net(torch.from_numpy(features(obs))[None])[0].numpy()
        return np.clip(a, -1.0, 1.0).astype(np.float32), self.label


def train_bc(backend_options: dict, episodes: int, epochs: int, seed: int) -> nn.Module:
    """Expert rollouts in the sim (random starts), then an MLP regressing the expert's action."""
    env = make_env("quad_hover", backend="mujoco", backend_options=backend_options)
    xs, ys = [], []
    sink = CallbackSink(lambda tr: (xs.append(features(tr.obs)), ys.append(np.asarray(tr.action, np.float32))))
    runner = Rollout(env, ExpertSource(env), [sink])
    for ep in range(episodes):
        runner.run_episode(seed + ep)
    env.close()
    x, y = torch.from_numpy(np.array(xs)), torch.from_numpy(np.array(ys))
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(x.shape[1], 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 4))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 256):
            idx = perm[i:i + 256]
            loss = nn.functional.mse_loss(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def evaluate(net: nn.Module, backend: str, options: dict, episodes: int, seed: int) -> dict[str, float]:
    env = make_env("quad_hover", backend=backend, overrides=EVAL_OVERRIDES, backend_options=options)
    hz = env.unwrapped.backend.spec.control_hz
    errors, successes, crashes = [], [], 0
    try:
        for ep in range(episodes):
            dist: list[float] = []
            sink = CallbackSink(lambda tr, dist=dist: dist.append(float(tr.info["distance"])))
            stats = Rollout(env, MlpSource(net), [sink]).run_episode(seed + 1000 + ep)
            crashes += int(stats.steps < env.unwrapped.task.max_episode_steps)
            errors.append(float(np.mean(dist[-int(2 * hz):])) if len(dist) >= 2 * hz else 3.0)
            successes.append(bool(stats.success))
    finally:
        env.close()
    return {"success": float(np.mean(successes)), "hover_error_m": float(np.median(errors)),
            "hover_error_spread_m": [float(np.min(errors)), float(np.max(errors))], "crashes": crashes}



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--autopilot", default="px4", choices=("px4", "ardupilot"))
    ap.add_argument("--sysid-seconds", type=float, default=20.0)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--bc-episodes", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--episodes", type=int, default=6, help="evaluation episodes per policy and backend")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rl-sysid-e2e-"))
    port = free_udp_port()
    log = open(work / "emulator.log", "w")  # noqa: SIM115 - closed below
    extra = ["--boot-scale", "0.05"] if args.autopilot == "ardupilot" else []
    emu = subprocess.Popen([sys.executable, "-m", "robotlearn.cli.emulate_quadrotor", "--mavlink",
                            f"udpout:127.0.0.1:{port}", "--autopilot", args.autopilot, *extra, "--gap", "quad_gap",
                            *HURT], stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    real = {"connection": f"udpin:127.0.0.1:{port}"}
    out: dict = {"gap": HURT, "autopilot": args.autopilot, "loadavg": os.getloadavg()}
    try:
        t0 = time.monotonic()
        data = collect_quad("real", real, args.sysid_seconds, seed=args.seed)
        registry = load_registry("quadrotor")
        replayer = QuadReplayer(data, "mujoco", 1.0)
        try:
            result = fit(replayer, registry, generations=args.generations, progress=False)
        finally:
            replayer.close()
        calib = write_calibration(calibration_of(result, registry, {"bench": "sysid_e2e"}), work / "calib.yaml")
        out["estimate"] = dict(zip(result.names, np.round(result.estimate, 4).tolist(), strict=True))
        out["sysid_s"] = round(time.monotonic() - t0, 1)
        print(f"sysid ({out['sysid_s']} s): {out['estimate']}", flush=True)
        policies = {}
        for name, opts in (("nominal", {}), ("calibrated", {"calibration": str(calib)})):
            t0 = time.monotonic()
            policies[name] = (train_bc(opts, args.bc_episodes, args.epochs, args.seed), opts)
            print(f"trained {name} policy in {time.monotonic() - t0:.0f} s", flush=True)
        results = {}
        for name, (net, opts) in policies.items():
            results[name] = {"own_sim": evaluate(net, "mujoco", opts, args.episodes, args.seed),
                             "emulated": evaluate(net, "real", real, args.episodes, args.seed)}
            print(name, json.dumps(results[name]), flush=True)
        out["results"] = results
        nominal, calibrated = results["nominal"], results["calibrated"]
        out["nominal_error_growth_x"] = nominal["emulated"]["hover_error_m"] / nominal["own_sim"]["hover_error_m"]
        out["calibrated_vs_nominal_error_on_emulator_x"] = (calibrated["emulated"]["hover_error_m"]
                                                            / nominal["emulated"]["hover_error_m"])
        out["nominal_success_drop_points"] = 100 * (nominal["own_sim"]["success"] - nominal["emulated"]["success"])
        own = calibrated["own_sim"]["success"]
        out["calibrated_success_fraction_of_sim"] = calibrated["emulated"]["success"] / own if own else None
    finally:
        emu.terminate()
        try:
            emu.wait(10)
        except subprocess.TimeoutExpired:
            emu.kill()
        log.close()
    out["loadavg_end"] = os.getloadavg()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
