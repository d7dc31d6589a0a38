"""``full`` and ``linear_probe``."""

from __future__ import annotations

from torch import nn

from ft.freezing import FreezeStrategy
from ft.specs import NoOptions

__all__ = ["FullStrategy", "LinearProbeStrategy", "NoOptions"]


class FullStrategy(FreezeStrategy):
    """Every parameter trains at the base learning rate."""

    name = "full"


class LinearProbeStrategy(FreezeStrategy):
    """The backbone is frozen and kept in eval mode; only the head trains."""

    name = "linear_probe"

    def apply(self, model: nn.Module) -> None:
        model.requires_grad_(False)
        model.head.requires_grad_(True)

    def backbone_frozen(self, epoch: int) -> bool:
        return True
