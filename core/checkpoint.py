"""Checkpoints that a crash cannot corrupt, and the training state they hold.

A checkpoint is a directory: ``model.safetensors`` (weights), ``state.pt``
(optimizer, scheduler, weight average, and every rank's random-number
state; read back with ``torch.load(weights_only=True)``) and ``state.json``
(epoch, batch, step, history). A run sharded with FSDP keeps model,
optimizer and weight average in ``dcp/`` instead (``torch.distributed.checkpoint``,
one file per rank, written by all ranks at once). It is written under a
temporary name and renamed into place; only then is the ``latest`` pointer
replaced, also by rename. So the last good checkpoint survives a crash at
any moment. Ranks meet at a barrier after each checkpoint, so none runs
ahead of a checkpoint that is still being written.
"""

from __future__ import annotations

import copy

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_file, save_model
from torch import nn

from .distributed import Distributed
from .errors import FtError
from .files import (check_file, checkpoint_dirs, make_temp_dir, read_json, read_safetensors,  # noqa: F401 (public here)
                    read_state, reason, recovery_hint, replace_dir, umask, unreadable, write_json_atomic)
from .parallel import full_state_dict


def save_weights(model: nn.Module, path: Path) -> None:
    """Model weights (buffers included) as safetensors; tied weights are fine."""
    save_model(model, str(path), force_contiguous=True)
    os.chmod(path, 0o666 & ~umask())  # safetensors creates its files 0600


def save_state_dict(state: dict[str, torch.Tensor], path: Path) -> None:
    """A gathered state dict (FSDP) as safetensors, shared storage split."""
    seen: set[int] = set()
    out = {}
    for name, tensor in state.items():
        tensor = tensor.detach().cpu()
        key = tensor.untyped_storage().data_ptr()
        out[name] = tensor.clone().contiguous() if key in seen else tensor.contiguous()
        seen.add(key)
    save_file(out, str(path))
    os.chmod(path, 0o666 & ~umask())


def load_weights(model: nn.Module, path: Path, strict: bool = True,
                 what: str = "the model weights") -> tuple[list[str], list[str]]:
    """Load a ``.safetensors`` file into ``model`` (tied weights are fine).

    A missing or damaged file, or weights that do not fit the model, is an
    :class:`FtError` naming the file and saying what to do.
    """
    check_file(path, what, None)
    try:
        missing, unexpected = load_model(model, str(path), strict=strict)
    except RuntimeError as exc:  # load_state_dict: names or shapes that do not fit
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()][1:4]
        raise FtError(f"the weights in the file do not fit the model: {'; '.join(lines) or reason(exc)}",
                      where=str(path), hint="the file was saved from another model: use the recipe the weights "
                                            "were trained with (the run's recipe.toml)") from None
    except Exception as exc:  # SafetensorError (header too large / too small / incomplete), OSError
        raise unreadable(path, what, "safetensors", exc, None) from None
    return missing, unexpected


def save_checkpoint_dir(target: Path, model: nn.Module, state: dict[str, Any], meta: dict) -> None:
    """Write a complete checkpoint directory at ``target`` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _finish_checkpoint_dir(make_temp_dir(target.parent, f".{target.name}.tmp-"), target, model, state, meta)


def _finish_checkpoint_dir(tmp: Path, target: Path, model: nn.Module | None, state: dict[str, Any],
                           meta: dict) -> None:
    """Weights (unless ``model`` is None: sharded ones are in ``tmp/dcp``), state and meta into ``tmp``,
    fsynced, then ``tmp`` swapped into place at ``target``; ``tmp`` is removed if anything fails."""
    try:
        if model is not None:
            save_weights(model, tmp / "model.safetensors")
        torch.save(state, tmp / "state.pt")
        write_json_atomic(tmp / "state.json", meta)
        for f in tmp.iterdir():
            if f.is_file():
                with f.open("rb") as fh:
                    os.fsync(fh.fileno())
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_checkpoint_dir(path: Path) -> tuple[dict[str, Any], dict]:
    """``(state, meta)`` of a checkpoint directory (weights loaded separately);
    a missing or damaged file is an :class:`FtError` naming it."""
    state = read_state(path / "state.pt", "the checkpoint's training state")
    meta = read_json(path / "state.json", "the checkpoint's progress record", recovery_hint(path / "state.json"))
    if not isinstance(meta, dict):
        raise FtError("cannot read the checkpoint's progress record: expected a JSON object",
                      where=str(path / "state.json"), hint=recovery_hint(path / "state.json"))
    return state, meta


# -- the training state of a run -------------------------------------------------


def capture_rng(device: torch.device) -> dict[str, Any]:
    """This process's random-number state: torch (CPU and this rank's GPU),
    ``random`` and numpy, as types ``torch.load(weights_only=True)`` reads."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss],
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    """Put back what :func:`capture_rng` took."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


@dataclass
class TrainingParts:
    """What a training checkpoint saves and restores."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any = None
    ema: Any = None
    sharded: bool = False  # FSDP: model, optimizer and average through torch.distributed.checkpoint


class TrainingSnapshot:
    """Everything a training step changes, held in memory to be put back:
    weights, optimizer, schedule, scaler, weight average, the modules'
    train/eval modes and the random-number state (``ft lr-find`` leaves the
    model as it found it). ``counters`` are the trainer's own (its step)."""

    def __init__(self, parts: TrainingParts, device: torch.device, counters: dict[str, Any]):
        self.model = {k: v.detach().clone() for k, v in parts.model.state_dict().items()}
        self.optimizer = copy.deepcopy(parts.optimizer.state_dict())
        self.scheduler = copy.deepcopy(parts.scheduler.state_dict())
        self.scaler = copy.deepcopy(parts.scaler.state_dict()) if parts.scaler is not None else None
        self.ema = ({k: v.detach().clone() for k, v in parts.ema.state_dict().items()}
                    if parts.ema is not None else None)
        self.modes = [(module, module.training) for module in parts.model.modules()]
        self.rng = capture_rng(device)
        self.counters = copy.deepcopy(counters)

    def put_back(self, parts: TrainingParts, device: torch.device) -> None:
        """Restore ``parts`` (the same objects the snapshot was taken of) and the RNG."""
        parts.model.load_state_dict(self.model)
        parts.optimizer.load_state_dict(self.optimizer)  # the groups' learning rates too
        parts.scheduler.load_state_dict(copy.deepcopy(self.scheduler))
        if self.scaler is not None:
            parts.scaler.load_state_dict(self.scaler)
        if self.ema is not None:
            parts.ema.load_state_dict(self.ema)
        for module, training in self.modes:
            module.training = training
        restore_rng(self.rng, device)


def _sharded_state(parts: TrainingParts) -> dict[str, Any]:
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optim_state = get_state_dict(parts.model, parts.optimizer)
    state = {"model": model_state, "optimizer": optim_state}
    if parts.ema is not None:
        state["ema"] = parts.ema.state_dict()
    return state


def save_training_checkpoint(root: Path, name: str, parts: TrainingParts, meta: dict, dist: Distributed,
                             device: torch.device, keep: int, rank_state: dict | None = None) -> Path:
    """Write checkpoint ``root/name`` and point ``root/latest.json`` at it.

    Every rank calls this: each rank's RNG state and ``rank_state`` (its
    running sums of a half-done epoch) go into the checkpoint, so a resumed
    multi-rank run draws and reports what the unbroken one would; sharded
    state is written by all ranks together. Rank 0 writes the rest.
    """
    ranks = dist.gather_object({"rng": capture_rng(device), **(rank_state or {})})
    target = root / name
    tmp = None
    if dist.is_main:
        root.mkdir(parents=True, exist_ok=True)
        tmp = make_temp_dir(root, f".{name}.tmp-")
    if parts.sharded:
        import torch.distributed.checkpoint as dcp

        tmp = dist.broadcast_object(tmp)
        dcp.save(_sharded_state(parts), checkpoint_id=str(tmp / "dcp"))
    if dist.is_main:
        state: dict[str, Any] = {"scheduler": parts.scheduler.state_dict(), "ranks": ranks}
        if not parts.sharded:
            state["optimizer"] = parts.optimizer.state_dict()
            if parts.ema is not None:
                state["ema"] = parts.ema.state_dict()
        if parts.scaler is not None:
            state["scaler"] = parts.scaler.state_dict()
        meta = {**meta, "world_size": dist.world_size, "sharded": parts.sharded}
        _finish_checkpoint_dir(tmp, target, None if parts.sharded else parts.model, state, meta)
        write_json_atomic(root / "latest.json", {"checkpoint": name, "epoch": meta["epoch"], "batch": meta["batch"]})
        kept = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("epoch-")),
                      key=lambda p: p.stat().st_mtime)
        for old in kept[:-keep]:
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    return target


def save_best(run_dir: Path, model: nn.Module, metrics: dict, dist: Distributed, sharded: bool) -> None:
    """``best/``: the model as it is now and the epoch's metrics. Every rank
    calls this (a sharded model is gathered first); rank 0 writes."""
    state = full_state_dict(model) if sharded else None
    if dist.is_main:
        tmp = run_dir / ".best.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        if state is not None:
            save_state_dict(state, tmp / "model.safetensors")
        else:
            save_weights(model, tmp / "model.safetensors")
        write_json_atomic(tmp / "metrics.json", metrics)
        replace_dir(tmp, run_dir / "best")
    dist.barrier()


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint ``checkpoints/latest.json`` names, or None. A garbled
    pointer is an :class:`FtError`; a folder it names that is missing is
    reported by whatever reads the checkpoint (a run directory's repair may
    put it back first)."""
    root = run_dir / "checkpoints"
    pointer = root / "latest.json"
    if not pointer.exists():
        return None
    hint = _pointer_hint(root)
    data = read_json(pointer, "the pointer to the latest checkpoint", hint)
    name = data.get("checkpoint") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise FtError(f"the pointer to the latest checkpoint names no checkpoint folder (found {data!r})",
                      where=str(pointer), hint=hint)
    return root / name


def _pointer_hint(root: Path) -> str:
    names = [p.name for p in checkpoint_dirs(root)]
    if not names:
        return "the run has no checkpoint folder left: start the run again without --resume"
    return (f"write {{\"checkpoint\": \"{names[-1]}\"}} into it, naming one of the checkpoint folders there "
            f"({', '.join(names)})")


def load_training_checkpoint(path: Path, parts: TrainingParts, dist: Distributed,
                             device: torch.device) -> tuple[dict, dict]:
    """Restore what :func:`save_training_checkpoint` wrote into ``parts``
    and this rank's RNG; returns the checkpoint's ``state.json`` and this
    rank's ``rank_state``."""
    state, meta = read_checkpoint_dir(path)
    saved_world = meta.get("world_size", 1)
    if saved_world != dist.world_size and meta.get("batch", 0):
        raise FtError(f"the checkpoint was written by {saved_world} rank(s) in the middle of an epoch; "
                      f"this run has {dist.world_size}", where=str(path),
                      hint=f"resume with {saved_world} rank(s) (ft run ... --nproc-per-node {saved_world})")
    if bool(meta.get("sharded")) != parts.sharded:
        kind = "FSDP (sharded)" if meta.get("sharded") else "unsharded"
        raise FtError(f"the checkpoint is {kind}; this run's train.distributed does not match", where=str(path),
                      hint="resume with the train.distributed the run started with")
    if parts.ema is not None and "ema" not in state and not parts.sharded:
        raise FtError("the checkpoint holds no weight average, but train.ema_decay is set", where=str(path),
                      hint="resume with the train.ema_decay the run started with (unset it if none)")
    if parts.sharded:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import set_state_dict

        sharded = _sharded_state(parts)
        dcp.load(sharded, checkpoint_id=str(path / "dcp"))
        set_state_dict(parts.model, parts.optimizer, model_state_dict=sharded["model"],
                       optim_state_dict=sharded["optimizer"])
        if parts.ema is not None:
            parts.ema.load_state_dict(sharded["ema"])
    else:
        load_weights(parts.model, path / "model.safetensors")
        parts.optimizer.load_state_dict(state["optimizer"])
        if parts.ema is not None:
            parts.ema.load_state_dict(state["ema"])
    parts.scheduler.load_state_dict(state["scheduler"])
    if parts.scaler is not None and "scaler" in state:
        parts.scaler.load_state_dict(state["scaler"])
    ranks = state["ranks"]
    # a rank the checkpoint did not know (more ranks now, at an epoch boundary) keeps its fresh seed
    mine = dict(ranks[dist.rank]) if dist.rank < len(ranks) else {}
    if "rng" in mine:
        restore_rng(mine.pop("rng"), device)
    return meta, mine


def run_weights(run_dir: Path) -> Path:
    """Where a finished or interrupted run keeps its model: ``best/``, else
    the latest checkpoint's weights (a ``dcp/`` folder if it was sharded)."""
    best = run_dir / "best" / "model.safetensors"
    if best.exists():
        return best
    path = latest_checkpoint(run_dir)
    if path is None:
        raise FtError("the run has no saved model (no best/ and no checkpoint)", where=str(run_dir))
    for source in (path / "model.safetensors", path / "dcp"):
        if source.exists():
            return source
    raise FtError("the checkpoint holds no model weights (no model.safetensors, no dcp/)", where=str(path),
                  hint=recovery_hint(path / "model.safetensors"))


def read_weights(source: Path, what: str = "the model weights") -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file or a sharded ``dcp/`` folder
    (gathered whole); a missing or damaged one is an FtError naming it."""
    if source.is_dir():
        return read_sharded_model(source)
    return read_safetensors(source, what)


def load_run_weights(model: nn.Module, run_dir: Path) -> Path:
    """Load :func:`run_weights` into ``model``; returns where they came from."""
    source = run_weights(run_dir)
    if source.is_dir():
        model.load_state_dict(read_sharded_model(source))
    else:
        load_weights(model, source)
    return source


def read_sharded_model(dcp_dir: Path) -> dict[str, torch.Tensor]:
    """The model weights of a sharded (``dcp/``) checkpoint, whole, in one process."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.format_utils import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

    hint = recovery_hint(dcp_dir)
    if not (dcp_dir / ".metadata").is_file():
        raise FtError("cannot read the sharded checkpoint: its .metadata file is missing", where=str(dcp_dir),
                      hint=hint)
    state: dict[str, Any] = {}
    try:
        _load_state_dict(state, storage_reader=FileSystemReader(str(dcp_dir)),
                         planner=_EmptyStateDictLoadPlanner(), no_dist=True)
    except Exception as exc:  # a truncated shard, garbled .metadata (pickle), a missing rank's file
        raise FtError(f"cannot read the sharded checkpoint: a file in it is damaged or missing ({reason(exc)})",
                      where=str(dcp_dir), hint=hint) from None
    if not isinstance(state.get("model"), dict):
        raise FtError("the sharded checkpoint holds no model weights", where=str(dcp_dir), hint=hint)
    return state["model"]
