"""SAC networks, the deployable policy, and the update step (one function, CleanRL style).

Observations are dicts. State keys (float) are concatenated in sorted order and normalized by a
running normalizer; image keys ("images/<cam>", uint8 HxWx3) go through small conv encoders trained
by the critic loss (DrQ: the actor sees detached features, images get random-shift augmentation).
Actions live in [-1, 1] inside the agent and are rescaled to the env's Box at the boundary.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robotlearn.data.replay import SOURCE_IDS
from robotlearn.policies.checkpoint import CheckpointError, load_module_state, load_tensors, read_config
from robotlearn.policies.nets import ConvEncoder, EnsembleMLP, mlp
from robotlearn.policies.normalizer import RunningNormalizer
from robotlearn.policies.sac.config import SACConfig

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
ObsSpec = dict[str, dict[str, Any]]  # key -> {"shape": [...], "dtype": "float32" | "uint8"}


def obs_spec_from_space(space, keys: list[str] | None = None) -> ObsSpec:
    """JSON-able description of a gymnasium Dict observation space (only `keys`, when given)."""
    if keys is not None:
        missing = sorted(set(keys) - set(space.spaces))
        if missing:
            raise ValueError(f"obs_keys {missing} are not observations of this env; it has {sorted(space.spaces)}")
    return {k: {"shape": list(s.shape), "dtype": str(s.dtype)} for k, s in space.spaces.items()
            if keys is None or k in keys}


def is_image_key(key: str) -> bool:
    return key.startswith("images/")


class SACPolicy(nn.Module):
    """What deploys: normalizer + image encoders + actor. Everything here is in model.safetensors."""

    def __init__(self, cfg: SACConfig, obs_spec: ObsSpec, action_low: np.ndarray, action_high: np.ndarray):
        super().__init__()
        self.obs_spec = obs_spec
        self.state_keys = sorted(k for k in obs_spec if not is_image_key(k))
        self.image_keys = sorted(k for k in obs_spec if is_image_key(k))
        self.state_dim = int(sum(np.prod(obs_spec[k]["shape"], dtype=int) for k in self.state_keys))
        self.norm = RunningNormalizer(self.state_dim) if cfg.normalize_obs else None
        self.convs = nn.ModuleDict({
            k.replace("/", "_"): ConvEncoder(obs_spec[k]["shape"][0], obs_spec[k]["shape"][1],
                                             features=cfg.image_features, shift_pad=cfg.image_shift)
            for k in self.image_keys})
        self.feature_dim = self.state_dim + cfg.image_features * len(self.image_keys)
        self.action_dim = len(action_low)
        self.actor = mlp(self.feature_dim, cfg.hidden, 2 * self.action_dim, layer_norm=cfg.layer_norm)
        self.register_buffer("action_low", torch.as_tensor(action_low, dtype=torch.float32))
        self.register_buffer("action_high", torch.as_tensor(action_high, dtype=torch.float32))

    # -- observation handling ------------------------------------------------------------------
    def state_vector(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Concatenate state keys of a batched numpy obs dict -> [B, state_dim] float32."""
        parts = [np.asarray(obs[k], np.float32).reshape(len(obs[k]), -1) for k in self.state_keys]
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(next(iter(obs.values()))), 0), np.float32)

    def features(self, state: torch.Tensor, images: Mapping[str, torch.Tensor], convs: nn.ModuleDict | None = None,
                 augment: bool = False) -> torch.Tensor:
        """[B, feature_dim]. `convs` lets the critic target use its own (lagged) encoders."""
        x = self.norm(state) if self.norm is not None else state
        if not self.image_keys:
            return x
        convs = self.convs if convs is None else convs
        feats = [convs[k.replace("/", "_")](images[k], augment) for k in self.image_keys]
        return torch.cat([x, *feats], dim=1)

    # -- action distribution -------------------------------------------------------------------
    def sample(self, feats: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Tanh-squashed Gaussian: (action in [-1,1], log-prob [B])."""
        mean, log_std = self.actor(feats).chunk(2, dim=-1)
        if deterministic:
            return torch.tanh(mean), torch.zeros(mean.shape[0])
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        std = log_std.exp()
        noise = torch.randn_like(mean)
        pre = mean + std * noise
        action = torch.tanh(pre)
        # log N(pre; mean, std) - log|d tanh/d pre|, the latter in the numerically stable softplus form
        log_prob = (-0.5 * noise.square() - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
        log_prob = log_prob - (2 * (np.log(2) - pre - F.softplus(-2 * pre))).sum(-1)
        return action, log_prob

    def to_env(self, action: np.ndarray) -> np.ndarray:
        low, high = self.action_low.numpy(), self.action_high.numpy()
        return (low + (np.asarray(action) + 1.0) * 0.5 * (high - low)).astype(np.float32)

    def from_env(self, action: np.ndarray) -> np.ndarray:
        low, high = self.action_low.numpy(), self.action_high.numpy()
        return np.clip(2.0 * (np.asarray(action, np.float32) - low) / (high - low) - 1.0, -1.0, 1.0)

    def obs_tensors(self, obs: Mapping[str, np.ndarray]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        state = torch.from_numpy(self.state_vector(obs))
        images = {k: torch.as_tensor(np.asarray(obs[k])) for k in self.image_keys}
        return state, images

    @torch.no_grad()
    def act_batch(self, obs: Mapping[str, np.ndarray], deterministic: bool = False) -> np.ndarray:
        """Batched obs dict -> agent actions in [-1, 1] (not yet rescaled to the env)."""
        state, images = self.obs_tensors(obs)
        action, _ = self.sample(self.features(state, images), deterministic)
        return action.numpy()

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """One env observation -> deterministic env action (the deploy/eval interface)."""
        missing = [k for k in self.obs_spec if k not in obs]
        if missing:
            raise KeyError(f"observation lacks {missing} the policy was trained with")
        batched = {k: np.asarray(obs[k])[None] for k in self.obs_spec}
        return self.to_env(self.act_batch(batched, deterministic=True)[0])

    def reset(self) -> None:
        """Start of an episode (SAC is memoryless; present for the common policy interface)."""

    @classmethod
    def load(cls, directory: str, config: dict[str, Any] | None = None) -> SACPolicy:
        """Build from config.json and load model.safetensors (no pickle anywhere)."""
        config = read_config(directory) if config is None else config
        try:
            cfg = SACConfig.model_validate(config["algo_config"])
            policy = cls(cfg, config["obs_spec"], np.asarray(config["action_low"], np.float32),
                         np.asarray(config["action_high"], np.float32))
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{directory}: config.json does not describe a SAC policy ({err})") from None
        load_module_state(policy, load_tensors(directory, "model", config), "policy", f"{directory}/model.safetensors")
        policy.eval()
        return policy


class SACAgent(nn.Module):
    """Policy + ensemble critic + target critic + temperature, and their optimizers."""

    def __init__(self, cfg: SACConfig, obs_spec: ObsSpec, action_low: np.ndarray, action_high: np.ndarray):
        super().__init__()
        self.cfg = cfg
        self.policy = SACPolicy(cfg, obs_spec, action_low, action_high)
        a = self.policy.action_dim
        self.critic = EnsembleMLP(cfg.num_critics, self.policy.feature_dim + a, cfg.hidden, 1, cfg.layer_norm)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.convs_target = copy.deepcopy(self.policy.convs).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(float(np.log(cfg.init_alpha))))
        self.target_entropy = float(cfg.target_entropy if cfg.target_entropy is not None else -a)
        self.actor_opt = torch.optim.Adam(self.policy.actor.parameters(), lr=cfg.actor_lr, fused=True)
        critic_params = list(self.critic.parameters()) + list(self.policy.convs.parameters())
        self.critic_opt = torch.optim.Adam(critic_params, lr=cfg.critic_lr, fused=True)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, fused=True)
        self._online = list(self.critic.parameters()) + list(self.policy.convs.parameters())
        self._target = list(self.critic_target.parameters()) + list(self.convs_target.parameters())
        self._critic_params = list(self.critic.parameters())

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.actor_opt, "critic": self.critic_opt, "alpha": self.alpha_opt}

    def batch_tensors(self, batch: Mapping[str, np.ndarray], prefix: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        obs = {k: batch[f"{prefix}/{k}"] for k in self.policy.obs_spec}
        return self.policy.obs_tensors(obs)


def demo_bc_loss(policy: SACPolicy, feats: torch.Tensor, action: torch.Tensor, source: np.ndarray) -> torch.Tensor:
    """Squared distance of the policy's mean action to the recorded action (summed over action dims) on the
    demo/human rows, averaged over those rows (0 when the batch has none)."""
    recorded = torch.from_numpy(source != SOURCE_IDS["policy"]).float()
    mean = torch.tanh(policy.actor(feats).chunk(2, dim=-1)[0])
    return ((mean - action).square().sum(-1) * recorded).sum() / recorded.sum().clamp(min=1.0)


def pretrain_actor(agent: SACAgent, demos, steps: int, batch_size: int, rng: np.random.Generator) -> float:
    """Behaviour cloning of the actor's mean on the demos (`cfg.bc_pretrain_steps`); returns the last loss.

    Why: SAC's first policy otherwise is noise, and its crashes are what the replay (and the critic) learn
    from for tens of thousands of steps; a cloned policy starts near the demonstrator's states.
    """
    loss = torch.zeros(())
    for _ in range(steps):
        batch = demos.sample(batch_size, rng)
        state, images = agent.batch_tensors(batch, "obs")
        loss = demo_bc_loss(agent.policy, agent.policy.features(state, images), torch.from_numpy(batch["action"]),
                            batch["source"])
        agent.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        agent.actor_opt.step()
    return float(loss.item())


def update(agent: SACAgent, batch: Mapping[str, np.ndarray], update_actor: bool = True) -> dict[str, float]:
    """One SAC gradient step on `batch` (numpy arrays from the replay buffer); returns scalar metrics.

    Critic: clipped double-Q (min over the ensemble) soft Bellman target from the target critic.
    Actor (when `update_actor`; RLPD updates it once per `utd` critic steps): maximize
    min-Q - alpha * log pi with the critic frozen, plus `cfg.bc_weight` * mean|Q| * the squared distance of the
    policy's mean action to the recorded one on the demo/human rows (TD3+BC's normalization). Why: at the one
    critic update per step a CPU affords, the demo half of RLPD's batches teaches the critic but reaches the
    actor only through it, and that critic undervalues the demos for tens of thousands of steps (measured on
    QuadHover: it preferred the policy's action over the expert's on 83 % of demo states at 10k steps, so a
    Q-filtered BC term switched itself off). Temperature: match `target_entropy`.
    """
    cfg, policy = agent.cfg, agent.policy
    augment = bool(policy.image_keys)
    state, images = agent.batch_tensors(batch, "obs")
    next_state, next_images = agent.batch_tensors(batch, "next_obs")
    action = torch.from_numpy(batch["action"])
    reward = torch.from_numpy(batch["reward"]).unsqueeze(-1)
    not_done = 1.0 - torch.from_numpy(batch["terminated"]).unsqueeze(-1)
    alpha = agent.log_alpha.detach().exp()

    # ---- critic ----
    with torch.no_grad():
        next_feats = policy.features(next_state, next_images, augment=augment)
        next_action, next_log_prob = policy.sample(next_feats)
        target_feats = policy.features(next_state, next_images, agent.convs_target, augment) if augment else next_feats
        next_q = agent.critic_target(torch.cat([target_feats, next_action], -1)).min(0).values
        target_q = reward + not_done * cfg.gamma * (next_q - alpha * next_log_prob.unsqueeze(-1))
    feats = policy.features(state, images, augment=augment)
    q = agent.critic(torch.cat([feats, action], -1))  # [n_critics, B, 1]
    critic_loss = (q - target_q).square().mean(dim=(1, 2)).sum()
    agent.critic_opt.zero_grad(set_to_none=True)
    critic_loss.backward()
    agent.critic_opt.step()
    with torch.no_grad():
        torch._foreach_lerp_(agent._target, agent._online, cfg.tau)
    metrics = {"critic_loss": critic_loss.item(), "q": q.detach().mean().item()}
    if not update_actor:
        return metrics

    # ---- actor and temperature (critic frozen: no weight gradients computed for it) ----
    for p in agent._critic_params:
        p.requires_grad_(False)
    feats = feats.detach()
    pi_action, log_prob = policy.sample(feats)
    q_pi = agent.critic(torch.cat([feats, pi_action], -1)).min(0).values.squeeze(-1)
    actor_loss = (alpha * log_prob - q_pi).mean()
    if cfg.bc_weight > 0:
        actor_loss = actor_loss + cfg.bc_weight * q_pi.detach().abs().mean() * demo_bc_loss(
            policy, feats, action, batch["source"])
    agent.actor_opt.zero_grad(set_to_none=True)
    actor_loss.backward()
    agent.actor_opt.step()
    for p in agent._critic_params:
        p.requires_grad_(True)
    alpha_loss = -(agent.log_alpha * (log_prob.detach() + agent.target_entropy)).mean()
    agent.alpha_opt.zero_grad(set_to_none=True)
    alpha_loss.backward()
    agent.alpha_opt.step()
    metrics.update(actor_loss=actor_loss.item(), alpha=alpha.item(), entropy=-log_prob.detach().mean().item())
    return metrics
