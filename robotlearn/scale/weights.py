"""Policy weights on the wire: a module's state dict as safetensors bytes.

Safetensors carries only tensors (names, dtypes, shapes, data), so a learner publishing weights and an
actor loading them never unpickle anything; the bytes are what `ray.put` stores once for all actors.
"""

from __future__ import annotations

from safetensors.torch import load, save
from torch import nn


def pack_state(module: nn.Module) -> bytes:
    """`module`'s parameters and buffers (normalizer statistics included) as safetensors bytes."""
    return save({k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()})


def unpack_state(module: nn.Module, data: bytes) -> None:
    """Load bytes from `pack_state` into `module` (strict: names and shapes must match)."""
    module.load_state_dict(load(data), strict=True)
