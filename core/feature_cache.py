"""Frozen-feature caching: run a frozen backbone once, train the head on its
features.

While the freeze strategy says the backbone is frozen (``linear_probe``, the
probe phase of ``lp_ft``) and the training inputs are not randomly augmented,
the backbone is a fixed function in eval mode: computing it every epoch is
wasted work. The features of each split are computed once, in dataset order,
and the head trains on them in the *same* sample order the raw loader would
use (same sampler, same seed), so the cached path reaches the same result as
the uncached one. Features are keyed by the backbone's identity and weights,
and the data fingerprint; with a directory they are also kept on disk
(safetensors) and reused by a resumed run.

Under DDP each rank runs the backbone over its share of the split's batches
and the shares are gathered, so every rank holds all the features after
one pass over 1/N of the data; rank 0 alone reads and writes the disk copy.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader

from .contracts import move_to
from .data import TensorPairs, cat_nested
from .distributed import Distributed


def weights_digest(module: nn.Module) -> str:
    """A digest of a module's parameters and buffers (names, shapes, values)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class FeatureCache:
    """Features of a frozen backbone per split, in memory and optionally on disk."""

    def __init__(self, backbone: nn.Module, fingerprint: str = "", directory: Path | None = None,
                 dist: Distributed | None = None):
        self.backbone = backbone
        self.fingerprint = fingerprint
        self.directory = directory
        self.dist = dist or Distributed()
        self._key: str | None = None
        self._store: dict[str, TensorPairs] = {}
        self.computed: list[str] = []  # splits computed (not loaded) this run, for the summary

    def key(self) -> str:
        describe = getattr(self.backbone, "describe", lambda: {})()
        text = json.dumps({"backbone": describe, "weights": weights_digest(self.backbone),
                           "data": self.fingerprint}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def has(self, split: str) -> bool:
        """Whether ``split``'s features are in memory now."""
        return split in self._store

    def invalidate_if_changed(self) -> bool:
        """Drop cached features if the backbone's weights changed since;
        returns True if they were dropped (or none were cached yet)."""
        key = self.key()
        if key != self._key:
            self._store.clear()
            self._key = key
            return True
        return False

    def get(self, split: str, loader: DataLoader, forward: Callable[[Any], torch.Tensor],
            device: torch.device, prepare: Callable[[Any], Any]) -> TensorPairs:
        """Features and targets of ``split``, computing them at most once.
        Under DDP every rank calls this with its sharded loader."""
        if self._key is None:
            self._key = self.key()
        if split in self._store:
            return self._store[split]
        path = self.directory / f"features-{split}-{self._key}.safetensors" if self.directory else None
        if path is not None and self.dist.decide(path.exists):
            pairs = self.dist.broadcast_object(_read(path) if self.dist.is_main else None)
        else:
            pairs = self._compute(loader, forward, device, prepare)
            self.computed.append(split)
            if path is not None and self.dist.is_main:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.tmp")
                save_file({"features": pairs.inputs.contiguous(), **_flatten(pairs.targets)}, str(tmp))
                tmp.replace(path)
        self._store[split] = pairs
        return pairs

    @torch.no_grad()
    def _compute(self, loader: DataLoader, forward, device, prepare) -> TensorPairs:
        was_training = self.backbone.training
        self.backbone.eval()
        positions = getattr(loader.batch_sampler, "positions", None)
        parts = []
        for i, (inputs, target) in enumerate(loader):
            place = positions[i] if positions is not None else i
            if place is not None:
                parts.append((place, forward(prepare(inputs)).float().cpu(), move_to(target, torch.device("cpu"))))
        self.backbone.train(was_training)
        if getattr(loader.batch_sampler, "sharded", False):  # every rank's batches, back in split order
            parts = [part for shard in self.dist.all_gather_object(parts) for part in shard]
        parts.sort(key=lambda part: part[0])
        return TensorPairs(torch.cat([f for _, f, _ in parts]), cat_nested([t for _, _, t in parts]))


def _read(path: Path) -> TensorPairs:
    tensors = load_file(str(path))
    return TensorPairs(tensors.pop("features"), _unflatten(tensors))


def _flatten(targets: Any) -> dict[str, torch.Tensor]:
    """Targets as safetensors entries: ``targets`` or ``targets.<key>``."""
    if isinstance(targets, dict):
        return {f"targets.{k}": v.contiguous() for k, v in targets.items()}
    return {"targets": targets.contiguous()}


def _unflatten(tensors: dict[str, torch.Tensor]) -> Any:
    if "targets" in tensors:
        return tensors["targets"]
    return {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("targets.")}
