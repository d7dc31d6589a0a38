"""``l2sp``: weight decay toward the pretrained weights instead of toward zero.

Li, Grandvalet & Davoine 2018, "Explicit Inductive Bias for Transfer Learning
with Convolutional Networks" (L2-SP). Everything trains, with the
regulariser

    alpha / 2 * sum ||w - w0||^2   over the backbone (w0: the pretrained values)
  + beta / 2  * ||w_head||^2       over the head's weight matrices

added to every step's loss. Decay toward 0 would pull the backbone away from
the starting point the paper wants to stay near, and the head's ``beta``
term already is its L2 penalty, so this strategy asks for no plain weight
decay on any of its groups (``weight_decay = 0.0`` on its ParamGroups; see
the note in the freeze strategies doc on the core reading it).

``w0`` is snapshotted in ``prepare`` (after the model is on its device,
before a resumed run loads its checkpoint, so it is always the pretrained
value) and kept on the strategy, not in the model: it is not a parameter and
not saved with the weights.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ft.freezing import ParamGroup
from ft.specs import Options

from ._split import split_model, trainable_param_groups
from .basic import ConfiguredStrategy


class L2SPOptions(Options):
    """Options of ``l2sp``."""

    alpha: float = Field(0.01, ge=0, description="strength of the pull of backbone weights toward their pretrained values")
    beta: float = Field(0.01, ge=0, description="strength of the L2 penalty on the head's weight matrices")


class L2SPStrategy(ConfiguredStrategy):
    """Full fine-tuning with an L2 pull toward the pretrained backbone weights."""

    name = "l2sp"
    options: L2SPOptions

    def __init__(self, options: L2SPOptions):
        super().__init__(options)
        self._anchors: list[tuple[nn.Parameter, torch.Tensor]] | None = None
        self._head_weights: list[nn.Parameter] = []

    def apply(self, model: nn.Module) -> None:
        split_model(model, self.name)
        model.requires_grad_(True)

    def prepare(self, model: nn.Module, data: Any, device: torch.device) -> None:
        split = split_model(model, self.name)
        self._anchors = [(p, p.detach().clone()) for p in split.backbone.parameters() if p.requires_grad]
        # weight matrices only: biases and norm scales get no L2 penalty (the core's no-decay rule)
        self._head_weights = [p for p in split.head.parameters() if p.requires_grad and p.ndim > 1]

    def param_groups(self, model: nn.Module) -> list[ParamGroup]:
        groups = trainable_param_groups(split_model(model, self.name))
        for group in groups:
            # read by the core's build_optimizer once ParamGroup.weight_decay exists (see docs/freeze_strategies.md)
            group.weight_decay = 0.0
        return groups

    def terms(self, model: nn.Module | None = None) -> dict[str, torch.Tensor]:
        """The two penalty terms, unscaled: ``sp`` = sum ||w - w0||^2 over the
        backbone, ``head`` = ||w_head||^2 (both differentiable)."""
        if self._anchors is None:
            raise RuntimeError("freeze strategy 'l2sp': prepare(model, ...) must run before the penalty is asked")
        # mse_loss keeps references to p and p0 for backward, where (p - p0) ** 2 would keep a fresh
        # difference tensor per parameter alive: a second copy of the backbone until the step ends
        sp = sum(F.mse_loss(p, p0, reduction="sum") for p, p0 in self._anchors)
        head = sum(p.pow(2).sum() for p in self._head_weights)
        zero = self._anchors[0][1].new_zeros(()) if self._anchors else torch.zeros(())
        return {"sp": sp if torch.is_tensor(sp) else zero, "head": head if torch.is_tensor(head) else zero}

    def extra_loss(self, model: nn.Module) -> torch.Tensor:
        t = self.terms(model)
        return 0.5 * self.options.alpha * t["sp"] + 0.5 * self.options.beta * t["head"]
