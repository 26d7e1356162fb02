"""Diffusion Policy (Chi et al.): a conditional 1-D U-Net denoising action chunks, sampled with diffusers schedulers."""

from robotlearn.policies.diffusion.config import DiffusionConfig, InferenceConfig, TrainConfig
from robotlearn.policies.diffusion.policy import (
    DiffusionAgent,
    DiffusionModel,
    load_diffusion,
    load_diffusion_model,
    save_diffusion,
)

__all__ = ["DiffusionAgent", "DiffusionConfig", "DiffusionModel", "InferenceConfig", "TrainConfig",
           "load_diffusion", "load_diffusion_model", "save_diffusion"]
