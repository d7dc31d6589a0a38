"""The freeze-strategy contract: which weights move, how fast, and when.

A strategy (registered by a plugin, see ``ft_freeze_strategies``) sets
``requires_grad``, returns explicit optimizer parameter groups and a per-group
learning-rate multiplier over time. Gradual unfreezing is a multiplier that
starts at 0, so every rank of a DDP run computes the same gradients shape and
frozen groups stay bit-identical until their turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .contracts import LayerGroup


@dataclass
class ParamGroup:
    """An optimizer group as a strategy sees it: name, params, static LR
    factor, and a weight decay that overrides the recipe's (``None`` keeps
    ``optim.weight_decay``; biases and norm weights never decay)."""

    name: str
    params: list[nn.Parameter]
    lr_mult: float = 1.0
    weight_decay: float | None = None


@dataclass(frozen=True)
class Progress:
    """Where training is: optimizer steps done, current epoch (0-based)."""

    step: int
    epoch: int
    steps_per_epoch: int


class FreezeStrategy:
    """Base strategy: everything trains at the base learning rate.

    Subclasses override what they change. Methods receive the unwrapped
    model; for an :class:`ft.FtModel` its ``layer_groups()`` are the backbone
    groups (input to output) followed by the head's, named
    :data:`ft.HEAD_GROUP`. A plain ``nn.Module`` (bare :class:`ft.Trainer`
    use) is one group named ``all``.
    """

    #: the registered name (``freeze.strategy``), shown in logs and the summary
    name: str = "full"

    def apply(self, model: nn.Module) -> None:
        """Set ``requires_grad`` and change the model if needed (LoRA).

        Called once before the optimizer is built, and again when a saved
        run is reloaded, so any surgery must be deterministic.
        """
        model.requires_grad_(True)

    def prepare(self, model: nn.Module, data: Any, device: torch.device) -> None:
        """Called once before training with the :class:`ft.DataBundle` (or
        None): for strategies that need data first (AdaBN)."""

    def finish(self, model: nn.Module, data: Any, device: torch.device) -> bool:
        """Called once after training, with the best weights loaded and
        before the final evaluation (AdaBN re-estimates BatchNorm statistics
        here). Return True if the model changed, so it is saved again."""
        return False

    def param_groups(self, model: nn.Module) -> list[ParamGroup]:
        """Optimizer groups of trainable parameters, one per layer group."""
        groups = model_layer_groups(model)
        out = [ParamGroup(g.name, [p for p in g.params if p.requires_grad]) for g in groups]
        return [g for g in out if g.params]

    def lr_multiplier(self, group: str, progress: Progress) -> float:
        """Time-dependent LR factor for ``group`` (applied on top of the
        schedule and the group's static ``lr_mult``)."""
        return 1.0

    def extra_loss(self, model: nn.Module) -> torch.Tensor | None:
        """A regulariser added to each step's loss (L2-SP), or None."""
        return None

    def backbone_frozen(self, epoch: int) -> bool:
        """True if in ``epoch`` the backbone gets no updates at all and runs
        in eval mode: the trainer may then train the head on cached features."""
        return False

    def set_train_mode(self, model: nn.Module, epoch: int) -> None:
        """Put the model in training mode for ``epoch``; a frozen backbone is
        kept in eval mode so BatchNorm statistics and dropout do not move."""
        model.train()
        backbone = getattr(model, "backbone", None)
        if backbone is not None and self.backbone_frozen(epoch):
            backbone.eval()

    def export(self, model: nn.Module) -> nn.Module:
        """The model to save for inference (LoRA merges here)."""
        return model

    def describe(self) -> dict:
        """JSON facts for the run summary and model card."""
        return {"strategy": self.name}


def apply_strategy(strategy: FreezeStrategy, model: nn.Module) -> None:
    """``strategy.apply(model)``, then re-freeze what the backbone pins."""
    strategy.apply(model)
    backbone = getattr(model, "backbone", None)
    prefixes = tuple(getattr(backbone, "always_frozen", ()) or ())
    if prefixes:
        for name, param in backbone.named_parameters():
            if any(name == p or name.startswith(p + ".") for p in prefixes):
                param.requires_grad_(False)


def model_layer_groups(model: nn.Module) -> list[LayerGroup]:
    """``model.layer_groups()`` if it has them, else one group ``all``."""
    if hasattr(model, "layer_groups"):
        return model.layer_groups()
    return [LayerGroup("all", list(model.parameters()))]


def parameter_table(model: nn.Module) -> list[dict]:
    """Trainable and frozen parameter counts per layer group."""
    rows = []
    for g in model_layer_groups(model):
        trainable = sum(p.numel() for p in g.params if p.requires_grad)
        rows.append({"group": g.name, "trainable": trainable, "frozen": g.numel - trainable})
    return rows
