"""Checkpoints that a crash cannot corrupt.

A checkpoint is a directory: ``model.safetensors`` (weights), ``state.pt``
(optimizer, scheduler and RNG tensors; read back with
``torch.load(weights_only=True)``) and ``state.json`` (epoch, step, history).
It is written under a temporary name and renamed into place; only then is
the ``latest`` pointer replaced, also by rename. So the last good checkpoint
survives a crash at any moment.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file beside ``path``, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_weights(model: nn.Module, path: Path) -> None:
    """Model weights (buffers included) as safetensors; tied weights are fine."""
    save_model(model, str(path), force_contiguous=True)


def load_weights(model: nn.Module, path: Path, strict: bool = True) -> None:
    missing, unexpected = load_model(model, str(path), strict=strict)
    return missing, unexpected


def save_checkpoint_dir(target: Path, model: nn.Module, state: dict[str, Any], meta: dict) -> None:
    """Write a complete checkpoint directory at ``target`` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        save_weights(model, tmp / "model.safetensors")
        torch.save(state, tmp / "state.pt")
        write_json_atomic(tmp / "state.json", meta)
        for f in tmp.iterdir():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_checkpoint_dir(path: Path) -> tuple[dict[str, Any], dict]:
    """``(state, meta)`` of a checkpoint directory (weights loaded separately)."""
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    meta = json.loads((path / "state.json").read_text())
    return state, meta
