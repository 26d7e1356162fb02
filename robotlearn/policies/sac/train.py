"""SAC training loop: rollouts, replay (+ RLPD demos, + human interventions), eval, checkpoints, resume.

Read top to bottom: build envs and agent -> (resume) -> loop { collect one step per env through the
rollout runner, update } with periodic log rows, evaluation and atomic checkpoints. Collection is the
one episode runner (robotlearn.rollout) with `SACSource` acting and `ReplaySink` storing. A SIGKILL at any point loses at most the steps since the
last checkpoint: `--resume` restores networks, optimizers, temperature, replay buffer, RNG states and
counters from it.
"""

from __future__ import annotations

import csv
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from robotlearn.data.replay import SOURCE_IDS, ReplayBuffer, symmetric_sample
from robotlearn.policies.checkpoint import (
    CheckpointError,
    load_module_state,
    load_tensors,
    prefixed,
    read_config,
    save_checkpoint,
)
from robotlearn.policies.sac.agent import SACAgent, SACPolicy, obs_spec_from_space, pretrain_actor, update
from robotlearn.policies.sac.config import SACConfig
from robotlearn.rollout import (
    ActionSource,
    EnvRecipe,
    InterventionSource,
    PolicySource,
    Rollout,
    Sink,
    Transition,
)

CHECKPOINT_DIR = "checkpoint"
LOG_FIELDS = ["step", "time_s", "train_s", "sps", "episodes", "return", "success", "critic_loss", "actor_loss", "alpha",
              "interventions", "eval_return", "eval_success", "updates", "actor_restarts"]


def env_recipe(cfg: SACConfig) -> EnvRecipe:
    return EnvRecipe(cfg.env, cfg.backend, tuple(cfg.env_overrides), cameras=tuple(cfg.cameras),
                     backend_options=cfg.backend_options)


class SACSource(ActionSource):
    """Uniform random actions until `explore` is switched off, then samples of the stochastic policy.
    Takes the policy alone (not the agent), so a remote actor holding only published weights uses it too."""

    def __init__(self, policy: SACPolicy, rng: np.random.Generator):
        self.policy, self.rng, self.explore = policy, rng, True

    def act(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:
        if self.explore:
            action = self.rng.uniform(-1.0, 1.0, self.policy.action_dim).astype(np.float32)
        else:
            action = self.policy.act_batch({k: np.asarray(v)[None] for k, v in obs.items()})[0]
        return self.policy.to_env(action), "policy"


def store_transitions(agent: SACAgent, replay: ReplayBuffer, demos: ReplayBuffer | None, prog: dict[str, Any],
                      obs: dict[str, np.ndarray], action: np.ndarray, reward: np.ndarray,
                      next_obs: dict[str, np.ndarray], terminated: np.ndarray, sources: np.ndarray) -> None:
    """Add N transitions (agent action space, source ids from data.replay.SOURCE_IDS) to the online buffer;
    human interventions also go to the demo buffer (HIL-SERL); the observation normalizer sees them all.
    The one place transitions enter the learner, whether they come from local envs or remote actors."""
    replay.add(obs, action, reward, next_obs, terminated, sources)
    human = sources == SOURCE_IDS["human"]
    if human.any():
        pick = np.flatnonzero(human)
        demos.add({k: v[pick] for k, v in obs.items()}, action[pick], reward[pick],
                  {k: v[pick] for k, v in next_obs.items()}, terminated[pick], "human")
        prog["interventions"] += int(human.sum())
    if agent.policy.norm is not None and agent.cfg.obs_stats == "online":
        agent.policy.norm.update(torch.from_numpy(agent.policy.state_vector(obs)))


class ReplaySink(Sink):
    """Stores each transition through `store_transitions`; keeps the episode statistics."""

    def __init__(self, agent: SACAgent, replay: ReplayBuffer, demos: ReplayBuffer | None, prog: dict[str, Any]):
        self.agent, self.replay, self.demos, self.prog = agent, replay, demos, prog
        self.returns: deque[float] = deque(maxlen=20)
        self.successes: deque[float] = deque(maxlen=20)

    def add(self, tr: Transition) -> None:
        obs = {k: np.asarray(v)[None] for k, v in tr.obs.items()}
        next_obs = {k: np.asarray(v)[None] for k, v in tr.next_obs.items()}
        store_transitions(self.agent, self.replay, self.demos, self.prog, obs,
                          self.agent.policy.from_env(tr.action)[None], np.array([tr.reward], np.float32), next_obs,
                          np.array([tr.terminated], np.float32), np.array([SOURCE_IDS[tr.source]], np.uint8))

    def end_episode(self, stats) -> None:
        self.returns.append(stats.episode_return)
        self.successes.append(float(stats.success))
        self.prog["episodes"] += 1


def load_demo_buffer(cfg: SACConfig, agent: SACAgent, obs_shapes: dict) -> ReplayBuffer:
    """Recorded episodes (robotlearn dataset) -> transitions labelled "demo" for RLPD symmetric sampling."""
    from robotlearn.data.dataset import obs_feature_key
    from robotlearn.data.loader import load_demos

    keys = {k: obs_feature_key(k) for k in obs_shapes}
    demos = load_demos(cfg.demos, keys=[*keys.values(), "action", "next.reward", "next.done"])
    # room for human interventions on top of the recorded demos (they share the demo half of each batch)
    buf = ReplayBuffer(demos.num_frames + cfg.total_steps, obs_shapes, agent.policy.action_dim)
    for e in range(len(demos.episode_ends)):
        ep = demos.episode(e)
        n = len(ep["action"]) - 1  # the last frame has no recorded successor observation
        if n <= 0:
            continue
        obs = {k: ep[f].reshape(len(ep[f]), *obs_shapes[k][0]) for k, f in keys.items()}
        buf.add({k: v[:-1] for k, v in obs.items()}, agent.policy.from_env(ep["action"][:-1]),
                ep["next.reward"][:-1].reshape(-1), {k: v[1:] for k, v in obs.items()},
                np.zeros(n, np.float32), "demo")
    if agent.policy.norm is not None and cfg.obs_stats == "demos":
        recorded = {k[len("obs/"):]: v for k, v in buf.state_dict().items() if k.startswith("obs/")}
        agent.policy.norm.update(torch.from_numpy(agent.policy.state_vector(recorded)))
    return buf


def check_demo_options(cfg: SACConfig) -> None:
    """Options that read the demos need demos (a one-line error before any env is built)."""
    if cfg.obs_stats == "demos" and cfg.normalize_obs and not cfg.demos:
        raise ValueError("obs_stats=demos takes the observation statistics from the demos: give a dataset (--dataset)")
    if (cfg.bc_weight > 0 or cfg.bc_pretrain_steps > 0) and not cfg.demos:
        raise ValueError("bc_weight / bc_pretrain_steps clone the demos: give a dataset (--dataset)")


def _optim_tensors(agent: SACAgent) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, groups = {}, {}
    for name, opt in agent.optimizers().items():
        sd = opt.state_dict()
        groups[name] = sd["param_groups"]
        for idx, state in sd["state"].items():
            for field, value in state.items():
                tensors[f"opt.{name}.{idx}.{field}"] = torch.as_tensor(value)
    return tensors, groups


def _restore_optimizers(agent: SACAgent, tensors: dict[str, torch.Tensor], groups: dict[str, Any]) -> None:
    for name, opt in agent.optimizers().items():
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            parts = key.split(".")
            if parts[0] == "opt" and parts[1] == name:
                state.setdefault(int(parts[2]), {})[parts[3]] = value
        opt.load_state_dict({"state": state, "param_groups": groups[name]})


def checkpoint_config(cfg: SACConfig, agent: SACAgent, progress: dict[str, Any]) -> dict[str, Any]:
    p = agent.policy
    return {"algo": "sac", "algo_config": cfg.model_dump(), "obs_spec": p.obs_spec,
            "action_low": p.action_low.tolist(), "action_high": p.action_high.tolist(),
            "env": env_recipe(cfg).to_dict(),
            "progress": progress}


def save(out: Path, cfg: SACConfig, agent: SACAgent, replay: ReplayBuffer, demos: ReplayBuffer | None,
         progress: dict[str, Any]) -> None:
    opt_tensors, groups = _optim_tensors(agent)
    train_state = {**prefixed("critic", agent.critic.state_dict()),
                   **prefixed("critic_target", agent.critic_target.state_dict()),
                   **prefixed("convs_target", agent.convs_target.state_dict()),
                   "log_alpha": agent.log_alpha.detach().clone(), "torch_rng": torch.get_rng_state(), **opt_tensors}
    files = {"model": prefixed("policy", agent.policy.state_dict()), "train_state": train_state}
    if cfg.save_replay:
        files["replay"] = {f"online/{k}": torch.from_numpy(v) for k, v in replay.state_dict().items()}
        if demos is not None:
            files["replay"].update({f"demos/{k}": torch.from_numpy(v) for k, v in demos.state_dict().items()})
    save_checkpoint(out / CHECKPOINT_DIR, {**checkpoint_config(cfg, agent, progress), "optim_groups": groups}, files)


def restore(directory: Path, cfg: SACConfig, agent: SACAgent, replay: ReplayBuffer,
            demos: ReplayBuffer | None) -> dict[str, Any]:
    """Load a training checkpoint into freshly built objects; returns its progress record."""
    config = read_config(directory)
    if config.get("obs_spec") != agent.policy.obs_spec:
        raise CheckpointError(f"{directory}: trained on observations {list(config.get('obs_spec', {}))}, "
                              f"this run has {list(agent.policy.obs_spec)}")
    model = load_tensors(directory, "model", config)
    load_module_state(agent.policy, model, "policy", str(directory))
    state = load_tensors(directory, "train_state", config)
    for name in ("critic", "critic_target", "convs_target"):
        load_module_state(getattr(agent, name), state, name, str(directory))
    with torch.no_grad():
        agent.log_alpha.copy_(state["log_alpha"])
    _restore_optimizers(agent, state, config["optim_groups"])
    torch.set_rng_state(state["torch_rng"])
    if "replay.safetensors" in config["files"]:
        data = load_tensors(directory, "replay", config)
        for prefix, buf in (("online/", replay), ("demos/", demos)):
            part = {k[len(prefix):]: v.numpy() for k, v in data.items() if k.startswith(prefix)}
            if buf is not None and part:
                buf.load_state_dict(part)
    return config["progress"]


class CsvLog:
    """progress.csv always; TensorBoard event files too when the tensorboard package is installed."""

    def __init__(self, path: Path, append: bool):
        self.file = open(path, "a" if append and path.exists() else "w", newline="")  # noqa: SIM115 - kept open
        self.writer = csv.DictWriter(self.file, LOG_FIELDS)
        if self.file.tell() == 0:
            self.writer.writeheader()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(path.parent / "tb"))
        except ImportError:  # tensorboard is optional
            self.tb = None

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow({k: row.get(k, "") for k in LOG_FIELDS})
        self.file.flush()
        if self.tb is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float, np.floating)):
                    self.tb.add_scalar(key, float(value), row["step"])

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def reached_goal(cfg: SACConfig, result: dict[str, float]) -> bool:
    """An evaluation met `stop_success` / `stop_return` (time-to-threshold runs end there)."""
    return bool(result) and ((cfg.stop_success is not None and result["success_rate"] >= cfg.stop_success)
                             or (cfg.stop_return is not None and result["mean_return"] >= cfg.stop_return))


def evaluate(agent: SACAgent, cfg: SACConfig, episodes: int, seed: int) -> dict[str, float]:
    env = env_recipe(cfg).make()
    try:
        return Rollout(env, PolicySource(agent.policy), realtime=False).run(episodes, seed=seed).summary()
    finally:
        env.close()


def train(cfg: SACConfig, out_dir: str | Path, resume: bool = False, progress_bar: bool = True,
          intervene: str = "none") -> dict[str, Any]:
    """Train SAC per `cfg`, writing out_dir/{progress.csv, checkpoint/}.

    `intervene` names an operator device (correction.hil.make_operator) that may take over during training.
    """
    from robotlearn.correction.hil import make_operator

    check_demo_options(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if intervene != "none" and cfg.num_envs != 1:
        raise ValueError("human interventions need num_envs=1 (one operator, one robot)")
    torch.manual_seed(cfg.seed)
    recipe = env_recipe(cfg)
    envs = [recipe.make() for _ in range(cfg.num_envs)]
    hil = make_operator(intervene, envs[0])
    obs_space = envs[0].observation_space
    act_space = envs[0].action_space
    agent = SACAgent(cfg, obs_spec_from_space(obs_space, cfg.obs_keys), act_space.low, act_space.high)
    obs_shapes = {k: (s.shape, s.dtype) for k, s in obs_space.spaces.items()}
    replay = ReplayBuffer(min(cfg.buffer_size, cfg.total_steps + cfg.num_envs), obs_shapes, agent.policy.action_dim)
    demos = load_demo_buffer(cfg, agent, obs_shapes) if cfg.demos else None
    if hil is not None and demos is None:  # interventions also feed the demo half of each batch (HIL-SERL)
        demos = ReplayBuffer(min(cfg.buffer_size, cfg.total_steps + 1), obs_shapes, agent.policy.action_dim)
    rng = np.random.default_rng(cfg.seed)
    prog: dict[str, Any] = {"step": 0, "episodes": 0, "interventions": 0}
    ckpt = out / CHECKPOINT_DIR
    if resume:
        if not (ckpt / "config.json").exists():
            raise CheckpointError(f"{ckpt}: nothing to resume (no checkpoint yet)")
        prog = restore(ckpt, cfg, agent, replay, demos)
        rng.bit_generator.state = prog["np_rng"]
    log = CsvLog(out / "progress.csv", append=resume)

    step, start_step = int(prog["step"]), int(prog["step"])
    pretrained = cfg.bc_pretrain_steps > 0
    if pretrained and not resume:
        pretrain_actor(agent, demos, cfg.bc_pretrain_steps, cfg.batch_size, rng)
    source = SACSource(agent.policy, rng)
    sink = ReplaySink(agent, replay, demos, prog)
    actor = InterventionSource(source, hil) if hil is not None else source
    # one rollout per env; env i's episodes are seeded seed + step + i, then counted up by the runner
    rollouts = [Rollout(env, actor, [sink], realtime=False) for env in envs]
    for i, rollout in enumerate(rollouts):
        rollout.start_episode(cfg.seed + step + i * 1_000_003)
    metrics: dict[str, float] = {}
    last_eval: dict[str, float] = {}
    t0 = time.perf_counter()
    side_time = 0.0  # seconds spent evaluating and checkpointing, excluded from training steps/s
    bar = tqdm(total=cfg.total_steps, initial=step, disable=not progress_bar, unit="step", dynamic_ncols=True)
    try:
        while step < cfg.total_steps:
            # ---- collect one step per env (act, step, store through the rollout runner) ----
            source.explore = step < cfg.learning_starts and not pretrained
            for rollout in rollouts:
                rollout.step()
            step += cfg.num_envs
            bar.update(cfg.num_envs)

            # ---- learn: utd critic updates per env step, one actor update per env step ----
            if step >= cfg.learning_starts:
                for j in range(cfg.num_envs * cfg.utd):
                    batch = symmetric_sample(replay, demos, cfg.batch_size, rng)
                    metrics = update(agent, batch, update_actor=(j % cfg.utd == cfg.utd - 1))

            # ---- log / eval / checkpoint ----
            sps = (step - start_step) / max(time.perf_counter() - t0 - side_time, 1e-9)
            row: dict[str, Any] = {}
            if cfg.eval_every and step % cfg.eval_every < cfg.num_envs or step >= cfg.total_steps:
                t_side = time.perf_counter()
                last_eval = evaluate(agent, cfg, cfg.eval_episodes, seed=10_000 + step)
                side_time += time.perf_counter() - t_side
                row.update(eval_return=last_eval["mean_return"], eval_success=last_eval["success_rate"])
            reached = bool(row) and reached_goal(cfg, last_eval)
            returns, successes = sink.returns, sink.successes
            if row or step % cfg.log_every < cfg.num_envs:
                row.update(step=step, time_s=round(time.perf_counter() - t0, 2),
                           train_s=round(time.perf_counter() - t0 - side_time, 2), sps=round(sps, 1),
                           episodes=prog["episodes"], interventions=prog["interventions"],
                           **{"return": np.mean(returns) if returns else "",
                              "success": np.mean(successes) if successes else ""},
                           **{k: metrics[k] for k in ("critic_loss", "actor_loss", "alpha") if k in metrics})
                log.write(row)
                bar.set_postfix(sps=f"{sps:.0f}", ret=f"{np.mean(returns):.1f}" if returns else "-",
                                succ=f"{np.mean(successes):.2f}" if successes else "-",
                                eval=f"{last_eval['success_rate']:.2f}" if last_eval else "-")
            if cfg.checkpoint_every and step % cfg.checkpoint_every < cfg.num_envs or step >= cfg.total_steps \
                    or reached:
                t_side = time.perf_counter()
                prog.update(step=step, np_rng=rng.bit_generator.state)
                save(out, cfg, agent, replay, demos, prog)
                side_time += time.perf_counter() - t_side
            if reached:
                break
    finally:
        bar.close()
        log.close()
        rollouts[0].close()  # closes the shared source (and the operator device); the others share it
        for env in envs:
            env.close()
    elapsed = time.perf_counter() - t0
    return {"steps": step, "trained_steps": step - start_step, "seconds": elapsed,
            "sps": (step - start_step) / max(elapsed - side_time, 1e-9), "checkpoint": str(ckpt),
            "eval_success": last_eval.get("success_rate"), "eval_return": last_eval.get("mean_return"),
            "train_return": float(np.mean(sink.returns)) if sink.returns else None}


def config_from_args(args) -> tuple[SACConfig, Path]:
    """`robotlearn train sac ...` arguments -> (config, run directory): config + overrides, or the
    checkpoint's own config (+ overrides) on --resume. Shared by the single-process and the Ray trainer."""
    from robotlearn.core.config import load_config, parse_overrides, validate

    out = Path(args.out or f"runs/sac-{(args.env or 'default').replace('/', '_')}")
    if args.resume:
        saved = read_config(out / CHECKPOINT_DIR)["algo_config"]
        cfg = validate(SACConfig, {**saved, **parse_overrides(args.overrides)}, out / CHECKPOINT_DIR / "config.json")
    else:
        cfg = load_config(SACConfig, "algos", args.config or "sac", args.overrides)
    # --dataset: recorded demos for RLPD symmetric sampling
    for key, value in (("env", args.env), ("backend", args.backend), ("total_steps", args.steps), ("seed", args.seed),
                       ("demos", getattr(args, "dataset", None))):
        if value is not None:
            setattr(cfg, key, value)
    options = getattr(args, "backend_options", None)  # cli/train.py: --backend-opt / --port
    if options:
        cfg.backend_options = options
    if not EnvRecipe(cfg.env, None).is_robotlearn and args.backend is None:
        cfg.backend = None
    return cfg, out


def report(result: dict[str, Any]) -> str:
    return (f"trained {result['trained_steps']} steps in {result['seconds']:.0f} s ({result['sps']:.0f} steps/s); "
            f"eval success {result['eval_success']}, return {result['eval_return']}; checkpoint: {result['checkpoint']}")


def cli_main(args) -> int:
    """`robotlearn train sac ...` in this process (`--actors N` goes to robotlearn.scale instead)."""
    cfg, out = config_from_args(args)
    result = train(cfg, out, resume=args.resume, progress_bar=not args.no_progress, intervene=args.intervene)
    print(report(result))
    return 0
