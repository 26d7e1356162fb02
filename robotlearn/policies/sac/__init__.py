"""Soft Actor-Critic (SERL/RLPD recipe): agent and update step in `agent`, training loop in `train`."""

from robotlearn.policies.sac.agent import SACAgent, SACPolicy, update
from robotlearn.policies.sac.config import SACConfig

__all__ = ["SACAgent", "SACConfig", "SACPolicy", "update"]
