"""Checkpoint I/O: safetensors for tensors, JSON for everything else, never pickle.

A checkpoint is a directory::

    config.json          what the policy is (algo, spaces, env it was trained on) + sha256 of each file
    model.safetensors    everything needed to act (loaded by `load_policy`)
    <other>.safetensors  optional training state (critics, optimizers, replay) for --resume

Tensors cross machines and users, so loading must not execute code: safetensors only holds raw
arrays, and JSON only data. The recorded sha256 turns a truncated or edited file into a clear
one-line error instead of a garbage policy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT = "robotlearn-checkpoint"
VERSION = 1
CONFIG_NAME = "config.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, stated in one line (path + what is wrong)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(directory: str | Path, config: dict[str, Any], files: dict[str, dict[str, torch.Tensor]]) -> Path:
    """Write `files` ({"model": {name: tensor}, ...}) and `config` to `directory` atomically.

    The new checkpoint is assembled in a sibling temp dir and swapped in with renames, so a process
    killed mid-save leaves the previous checkpoint intact (what --resume relies on).
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        digests = {}
        for name, tensors in files.items():
            path = tmp / f"{name}.safetensors"
            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))
            digests[f"{name}.safetensors"] = _sha256(path)
        full = {"format": FORMAT, "version": VERSION, **config, "files": digests}
        (tmp / CONFIG_NAME).write_text(json.dumps(full, indent=2, default=_json_default))
        old = directory.with_name(f".{directory.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if directory.exists():
            os.rename(directory, old)
        os.rename(tmp, directory)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return directory


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (np.ndarray, tuple)):
        return list(obj.tolist() if isinstance(obj, np.ndarray) else obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def read_config(directory: str | Path) -> dict[str, Any]:
    """Read and check config.json of a checkpoint directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: checkpoint directory does not exist")
    path = directory / CONFIG_NAME
    if not path.exists():
        raise CheckpointError(f"{directory}: not a checkpoint (no {CONFIG_NAME})")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: corrupted config (invalid JSON: {err})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a robotlearn checkpoint (format={config.get('format') if isinstance(config, dict) else None!r})")
    if config.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {config.get('version')!r}, this robotlearn reads {VERSION}")
    return config


def load_tensors(directory: str | Path, name: str, config: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """Load `<name>.safetensors` after checking its sha256 against config.json."""
    directory = Path(directory)
    config = read_config(directory) if config is None else config
    fname = f"{name}.safetensors"
    path = directory / fname
    expected = config.get("files", {}).get(fname)
    if expected is None or not path.exists():
        raise CheckpointError(f"{directory}: checkpoint has no {fname}")
    if _sha256(path) != expected:
        raise CheckpointError(f"{path}: corrupted (sha256 does not match config.json)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: corrupted safetensors file ({err})") from None


def load_module_state(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str, source: str) -> None:
    """Copy `prefix.*` tensors into `module`, raising CheckpointError on missing/extra keys or shape mismatch."""
    own = module.state_dict()
    sub = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    missing = sorted(set(own) - set(sub))
    extra = sorted(set(sub) - set(own))
    if missing or extra:
        raise CheckpointError(
            f"{source}: {prefix} does not match this model (missing {missing[:3]}, unexpected {extra[:3]})")
    for key, value in sub.items():
        if value.shape != own[key].shape:
            raise CheckpointError(
                f"{source}: {prefix}.{key} has shape {tuple(value.shape)}, model expects {tuple(own[key].shape)}")
    module.load_state_dict(sub)


def prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}
