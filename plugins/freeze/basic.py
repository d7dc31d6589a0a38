"""``full`` and ``linear_probe``, and the base of strategies with options."""

from __future__ import annotations

from torch import nn

from ft.freezing import FreezeStrategy
from ft.specs import NoOptions, Options

from ._split import split_model

__all__ = ["FullStrategy", "LinearProbeStrategy", "ConfiguredStrategy", "NoOptions"]


class FullStrategy(FreezeStrategy):
    """Every parameter trains at the base learning rate."""

    name = "full"


class LinearProbeStrategy(FreezeStrategy):
    """The backbone is frozen and kept in eval mode; only the head trains."""

    name = "linear_probe"

    def apply(self, model: nn.Module) -> None:
        split_model(model, self.name)
        model.requires_grad_(False)
        model.head.requires_grad_(True)

    def backbone_frozen(self, epoch: int) -> bool:
        return True


class ConfiguredStrategy(FreezeStrategy):
    """A strategy built from its validated recipe options (``[freeze]``).

    ``describe()`` reports the options, so the run's settings and summary say
    exactly how the strategy was configured.
    """

    def __init__(self, options: Options):
        self.options = options

    def describe(self) -> dict:
        return {"strategy": self.name, **self.options.model_dump(mode="json")}
