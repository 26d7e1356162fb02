"""Policies (SAC, diffusion) behind one loader: `load_policy(checkpoint_dir)`.

A checkpoint's config.json names its algorithm; the loader for it is looked up here, lazily, so
loading a SAC policy never imports the diffusion stack and vice versa. Every loaded policy offers
`act(obs_dict) -> env action` and `reset()`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from robotlearn.policies.checkpoint import CheckpointError, read_config

# algo name (config.json "algo") -> "module:Class" whose classmethod load(directory, config) builds the policy
POLICY_LOADERS: dict[str, str] = {
    "sac": "robotlearn.policies.sac.agent:SACPolicy",
    "diffusion": "robotlearn.policies.diffusion.policy:DiffusionAgent",
}


class Policy(Protocol):
    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...

    def reset(self) -> None: ...


def load_policy(path: str | Path) -> Any:
    """Load the policy saved in checkpoint directory `path` (safetensors + JSON; no pickle)."""
    config = read_config(path)
    algo = config.get("algo")
    if algo not in POLICY_LOADERS:
        raise CheckpointError(f"{path}: unknown algo {algo!r}; known: {', '.join(sorted(POLICY_LOADERS))}")
    module_name, cls_name = POLICY_LOADERS[algo].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls.load(str(path), config)


__all__ = ["POLICY_LOADERS", "CheckpointError", "Policy", "load_policy", "read_config"]
