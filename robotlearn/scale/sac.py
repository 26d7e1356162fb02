"""Asynchronous SAC on Ray: N `SACActor`s step envs while one learner updates without waiting for them.

Read top to bottom: connect to Ray -> start the actors (env recipe JSON + config JSON) -> build the agent
from actor 0's spaces -> (resume) -> loop { take every batch that has arrived into the replay buffer and
send that actor its next `collect` call (with new weights if the learner published since), run a few
updates, log / evaluate / checkpoint }. The learner only blocks when it has nothing to learn from: before
`learning_starts`, or when it is `utd` updates per collected step ahead of the actors (the single-process
ratio, so a fast learner does not overfit a slow robot). Weights go out as safetensors bytes, `ray.put`
once per publication and shared by every actor. A failed actor (process died, env raised) is reported,
replaced by a fresh one with a new seed, and the learner keeps going; after `max_restarts` failures of
one actor it is dropped, and the run stops only when none is left.

Checkpoints are the single-process ones (robotlearn.policies.sac.train.save), so `--resume` works across
both loops and `robotlearn eval` / `deploy` read them unchanged.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from robotlearn.core.config import ConfigError
from robotlearn.data.replay import ReplayBuffer, symmetric_sample
from robotlearn.policies.checkpoint import CheckpointError, read_config
from robotlearn.policies.sac.agent import SACAgent, update
from robotlearn.policies.sac.config import SACConfig
from robotlearn.policies.sac.train import (
    CHECKPOINT_DIR,
    CsvLog,
    check_demo_options,
    env_recipe,
    evaluate,
    load_demo_buffer,
    reached_goal,
    restore,
    save,
    store_transitions,
)
from robotlearn.scale.actor import SACActor
from robotlearn.scale.weights import pack_state

UPDATES_PER_POLL = 8  # learner updates between looks at the actors' mailboxes (a look costs ~0.1 ms)


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start a local Ray instance (`num_cpus` logical CPUs) or join the cluster at `address`
    ("auto", "host:6379", "ray://host:10001"); a one-line ConfigError if it cannot be reached."""
    import ray

    if ray.is_initialized():
        return
    if address and address != "auto":
        _reachable(address)
    try:
        if address:
            ray.init(address=address, include_dashboard=False, configure_logging=False, log_to_driver=True)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, configure_logging=False, log_to_driver=True)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ConfigError(f"cannot {'join the Ray cluster at ' + address if address else 'start Ray'}: "
                          f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes (Ray keeps retrying a dead head), when nothing listens at `address`."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address takes HOST:PORT (or auto), got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConfigError(f"cannot join the Ray cluster at {address}: {err.strerror or err} "
                          "(is `ray start --head` running there?)") from None


@dataclass
class ActorSlot:
    index: int
    handle: Any
    version: int = -1     # weights version last sent to this actor
    restarts: int = 0
    pending: Any = None   # ObjectRef of the collect call in flight


class AsyncSAC:
    """The learner and its actors (see the module docstring). `on_batch(learner, result)` is called after
    each batch is stored (progress displays, and tests that break an actor mid-run)."""

    def __init__(self, cfg: SACConfig, out: str | Path, actors: int, resume: bool = False, intervene: str = "none",
                 robot_resource: str | None = None, max_restarts: int = 3, progress_bar: bool = True,
                 on_batch: Callable[[AsyncSAC, dict[str, Any]], None] | None = None):
        import ray

        if actors < 1:
            raise ValueError(f"asynchronous SAC needs at least one actor, got {actors}")
        if cfg.num_envs != 1:
            raise ConfigError("with --actors each actor steps one env: leave num_envs at 1")
        self.ray, self.cfg, self.out = ray, cfg, Path(out)
        self.intervene, self.robot_resource = intervene, robot_resource
        self.max_restarts, self.progress_bar, self.on_batch = max_restarts, progress_bar, on_batch
        self.out.mkdir(parents=True, exist_ok=True)
        self.recipe_json, self.config_json = env_recipe(cfg).to_json(), cfg.model_dump_json()
        self.remote_actor = ray.remote(num_cpus=1, max_restarts=0)(SACActor)
        self.failures: list[dict[str, Any]] = []
        self.prog: dict[str, Any] = {"step": 0, "episodes": 0, "interventions": 0, "updates": 0, "actor_restarts": 0}
        ckpt = self.out / CHECKPOINT_DIR
        if resume and (ckpt / "config.json").exists():  # seed the actors past the episodes already run
            self.prog["step"] = int(read_config(ckpt).get("progress", {}).get("step", 0))
        self.slots = [ActorSlot(i, self._spawn(i, 0)) for i in range(actors)]
        try:
            spaces = ray.get(self.slots[0].handle.spaces.remote())
        except ray.exceptions.RayError as err:
            self.close()
            raise ConfigError(f"actor 0 could not build {cfg.env}: {_first_line(err)}") from None
        torch.manual_seed(cfg.seed)
        self.agent = SACAgent(cfg, spaces["obs_spec"], np.asarray(spaces["action_low"], np.float32),
                              np.asarray(spaces["action_high"], np.float32))
        obs_shapes = {k: (tuple(v["shape"]), np.dtype(v["dtype"])) for k, v in spaces["obs_spec"].items()}
        action_dim = self.agent.policy.action_dim
        self.replay = ReplayBuffer(min(cfg.buffer_size, cfg.total_steps + cfg.actor_batch), obs_shapes, action_dim)
        check_demo_options(cfg)
        if cfg.bc_pretrain_steps:
            self.close()
            raise ConfigError("bc_pretrain_steps is not supported with --actors (the single-process trainer has it)")
        self.demos = load_demo_buffer(cfg, self.agent, obs_shapes) if cfg.demos else None
        if intervene != "none" and self.demos is None:
            self.demos = ReplayBuffer(min(cfg.buffer_size, cfg.total_steps + 1), obs_shapes, action_dim)
        self.rng = np.random.default_rng(cfg.seed)
        if resume:
            if not (ckpt / "config.json").exists():
                self.close()
                raise CheckpointError(f"{ckpt}: nothing to resume (no checkpoint yet)")
            self.prog.update(restore(ckpt, cfg, self.agent, self.replay, self.demos))
            self.rng.bit_generator.state = self.prog["np_rng"]
            self.prog.setdefault("updates", cfg.utd * max(0, self.prog["step"] - cfg.learning_starts + 1))
        self.resume = resume
        self.version, self.weights_ref = -1, None
        self.returns: deque[float] = deque(maxlen=20)
        self.successes: deque[float] = deque(maxlen=20)
        self.received: dict[int, int] = {}  # actor index -> transitions stored from it
        self.metrics: dict[str, float] = {}
        self.actor_step_s: list[float] = []  # per batch: an actor's seconds per env step (act + step + record)
        self.update_s = 0.0                  # learner seconds spent in update steps
        self.ingest_s = 0.0                  # learner seconds spent taking batches in (transfer + replay add)

    # ---- actors ----------------------------------------------------------------------------------------
    def _spawn(self, index: int, restarts: int):
        """A fresh actor; its episodes are seeded apart from every other actor's, restart and resume."""
        seed = self.cfg.seed + int(self.prog["step"]) + (index + 1) * 1_000_003 + restarts * 7_919
        options = {"resources": {self.robot_resource: 1}} if index == 0 and self.robot_resource else {}
        return self.remote_actor.options(**options).remote(index, self.recipe_json, self.config_json, seed,
                                                           self.intervene if index == 0 else "none")

    def publish(self) -> None:
        """Make the current policy weights the ones every next `collect` call carries."""
        self.weights_ref = self.ray.put(pack_state(self.agent.policy))
        self.version += 1

    def _submit(self, slot: ActorSlot) -> None:
        fresh = slot.version != self.version
        slot.pending = slot.handle.collect.remote(self.cfg.actor_batch, self.prog["step"] < self.cfg.learning_starts,
                                                  self.weights_ref if fresh else None, self.version)
        slot.version = self.version

    def _fail(self, slot: ActorSlot, err: BaseException) -> None:
        """Report the failure, replace the actor (or drop it after max_restarts), keep learning."""
        slot.restarts += 1
        self.prog["actor_restarts"] += 1
        gone = slot.restarts > self.max_restarts
        record = {"actor": slot.index, "step": self.prog["step"], "error": _first_line(err), "restarted": not gone}
        self.failures.append(record)
        tqdm.write(f"actor {slot.index} failed at step {record['step']} ({record['error']}); "
                   + ("dropped (too many failures)" if gone else f"restarted ({slot.restarts}/{self.max_restarts})"),
                   file=sys.stderr)
        self.ray.kill(slot.handle, no_restart=True)
        if gone:
            self.slots.remove(slot)
            if not self.slots:
                raise RuntimeError(f"every actor failed; last error: {record['error']}")
            return
        slot.handle, slot.version = self._spawn(slot.index, slot.restarts), -1
        self._submit(slot)

    def _receive(self, slot: ActorSlot) -> int:
        """Store a finished batch (at most up to total_steps) and send the actor its next call."""
        t0 = time.perf_counter()
        try:
            result = self.ray.get(slot.pending)
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.RayTaskError) as err:
            self._fail(slot, err)
            return 0
        batch, cfg = result["batch"], self.cfg
        self.actor_step_s.append(result["seconds"] / max(len(batch["reward"]), 1))
        n = min(len(batch["reward"]), cfg.total_steps - self.prog["step"])
        obs = {k: batch[f"obs/{k}"][:n] for k in self.agent.policy.obs_spec}
        next_obs = {k: batch[f"next_obs/{k}"][:n] for k in self.agent.policy.obs_spec}
        store_transitions(self.agent, self.replay, self.demos, self.prog, obs, batch["action"][:n],
                          batch["reward"][:n], next_obs, batch["terminated"][:n], batch["source"][:n])
        self.prog["step"] += n
        self.prog["episodes"] += len(batch["episode_return"])
        self.returns.extend(batch["episode_return"].tolist())
        self.successes.extend(batch["episode_success"].tolist())
        self.received[slot.index] = self.received.get(slot.index, 0) + n
        self.ingest_s += time.perf_counter() - t0
        if self.prog["step"] < cfg.total_steps:
            self._submit(slot)
        else:
            slot.pending = None
        if self.on_batch is not None:
            self.on_batch(self, result)
        return n

    # ---- learner ---------------------------------------------------------------------------------------
    def may_update(self) -> bool:
        """Past learning_starts and not more than `utd` updates per collected step ahead of the actors."""
        cfg, step = self.cfg, self.prog["step"]
        return step >= cfg.learning_starts and self.prog["updates"] < cfg.utd * (step - cfg.learning_starts + 1)

    def _learn(self) -> None:
        cfg = self.cfg
        for _ in range(UPDATES_PER_POLL):
            if not self.may_update():
                return
            t0 = time.perf_counter()
            batch = symmetric_sample(self.replay, self.demos, cfg.batch_size, self.rng)
            j = self.prog["updates"]
            self.metrics = update(self.agent, batch, update_actor=(j % cfg.utd == cfg.utd - 1))
            self.prog["updates"] = j + 1
            if (j + 1) % cfg.publish_every == 0:
                self.publish()
            self.update_s += time.perf_counter() - t0

    def run(self) -> dict[str, Any]:
        cfg, prog, ray = self.cfg, self.prog, self.ray
        log = CsvLog(self.out / "progress.csv", append=self.resume)
        start_step, start_updates = int(prog["step"]), int(prog["updates"])
        last_eval: dict[str, float] = {}
        t0 = time.perf_counter()
        side_time = 0.0
        bar = tqdm(total=cfg.total_steps, initial=start_step, disable=not self.progress_bar, unit="step",
                   dynamic_ncols=True)
        try:
            self.publish()
            for slot in self.slots:
                self._submit(slot)
            while prog["step"] < cfg.total_steps:
                pending = [s.pending for s in self.slots if s.pending is not None]
                ready, _ = ray.wait(pending, num_returns=len(pending), timeout=0)
                if not ready and not self.may_update():
                    ready, _ = ray.wait(pending, num_returns=1)  # nothing to learn from: wait for data
                before = prog["step"]
                for slot in [s for s in self.slots if s.pending in ready]:
                    self._receive(slot)
                self._learn()
                step = prog["step"]
                bar.update(step - before)

                elapsed = time.perf_counter() - t0 - side_time
                row: dict[str, Any] = {}
                done = step >= cfg.total_steps
                if done or _crossed(before, step, cfg.eval_every):
                    t_side = time.perf_counter()
                    last_eval = evaluate(self.agent, cfg, cfg.eval_episodes, seed=10_000 + step)
                    side_time += time.perf_counter() - t_side
                    row.update(eval_return=last_eval["mean_return"], eval_success=last_eval["success_rate"])
                reached = bool(row) and reached_goal(cfg, last_eval)
                if row or _crossed(before, step, cfg.log_every):
                    sps = (step - start_step) / max(elapsed, 1e-9)
                    row.update(step=step, time_s=round(time.perf_counter() - t0, 2), train_s=round(elapsed, 2),
                               sps=round(sps, 1),
                               episodes=prog["episodes"], interventions=prog["interventions"],
                               updates=prog["updates"], actor_restarts=prog["actor_restarts"],
                               **{"return": np.mean(self.returns) if self.returns else "",
                                  "success": np.mean(self.successes) if self.successes else ""},
                               **{k: self.metrics[k] for k in ("critic_loss", "actor_loss", "alpha")
                                  if k in self.metrics})
                    log.write(row)
                    bar.set_postfix(sps=f"{sps:.0f}", upd=prog["updates"],
                                    succ=f"{np.mean(self.successes):.2f}" if self.successes else "-",
                                    eval=f"{last_eval['success_rate']:.2f}" if last_eval else "-")
                if done or reached or _crossed(before, step, cfg.checkpoint_every):
                    t_side = time.perf_counter()
                    prog["np_rng"] = self.rng.bit_generator.state
                    save(self.out, cfg, self.agent, self.replay, self.demos, prog)
                    side_time += time.perf_counter() - t_side
                if reached:
                    break
        finally:
            bar.close()
            log.close()
            self.close()
        seconds = time.perf_counter() - t0
        busy = max(seconds - side_time, 1e-9)
        return {"steps": prog["step"], "trained_steps": prog["step"] - start_step, "seconds": seconds,
                "sps": (prog["step"] - start_step) / busy, "updates": prog["updates"],
                "updates_per_s": (prog["updates"] - start_updates) / busy, "actors": len(self.slots),
                "actor_restarts": prog["actor_restarts"], "failures": self.failures,
                "received": dict(self.received), "weights_version": self.version,
                "actor_step_ms": 1e3 * float(np.median(self.actor_step_s)) if self.actor_step_s else None,
                "update_ms": 1e3 * self.update_s / max(prog["updates"] - start_updates, 1),
                "ingest_ms_per_step": 1e3 * self.ingest_s / max(prog["step"] - start_step, 1),
                "checkpoint": str(self.out / CHECKPOINT_DIR), "eval_success": last_eval.get("success_rate"),
                "eval_return": last_eval.get("mean_return"),
                "train_return": float(np.mean(self.returns)) if self.returns else None}

    def close(self) -> None:
        """Stop every actor (their envs close with their processes)."""
        for slot in self.slots:
            self.ray.kill(slot.handle, no_restart=True)


def _crossed(before: int, after: int, every: int) -> bool:
    """The step count passed a multiple of `every` (batches advance it by more than one)."""
    return bool(every) and after // every > before // every


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1] if text else ''}"[:300]


def train_async(cfg: SACConfig, out: str | Path, actors: int, address: str | None = None, **options) -> dict[str, Any]:
    """Connect to Ray (local, or the cluster at `address`) and run `AsyncSAC(cfg, out, actors, **options)`."""
    import os

    connect(address, None if address else max(actors, os.cpu_count() or 1))
    return AsyncSAC(cfg, out, actors, **options).run()


def cli_main(args) -> int:
    """`robotlearn train sac --actors N [--address A] ...` (same options and config as the single-process run)."""
    from robotlearn.policies.sac.train import config_from_args, report

    cfg, out = config_from_args(args)
    result = train_async(cfg, out, args.actors, args.address, resume=args.resume, intervene=args.intervene,
                         robot_resource=args.robot_resource, progress_bar=not args.no_progress)
    print(report(result) + f"; {result['actors']} actors, {result['updates']} updates "
          f"({result['updates_per_s']:.0f}/s), actor restarts {result['actor_restarts']}")
    return 0
