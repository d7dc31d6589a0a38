"""``discriminative_lr`` and the ``lr_decay`` option other strategies share.

Lower layers of a pretrained network hold more general features than upper
ones (Yosinski et al. 2014, "How transferable are features in deep neural
networks?"), so they should move less when fine-tuning. Two conventions for
the same geometric schedule are in use:

* **factor** -- ULMFiT's discriminative fine-tuning (Howard & Ruder 2018,
  "Universal Language Model Fine-tuning for Text Classification"): each
  layer group trains at the rate of the group above it divided by ``factor``
  (2.6 in the paper), so the group ``d`` groups below the head gets
  ``lr / factor**d``.
* **layerwise** -- layer-wise learning-rate decay as in BEiT (Bao et al.
  2021) and timm's ``layer_decay``: the group at depth ``d`` gets
  ``lr * decay**d`` (0.65-0.75 is usual for ViTs).

Depth counts backbone layer groups from the head: head 0, top backbone group
1, ..., bottom group ``n``. The multiplier is static (``ParamGroup.lr_mult``)
and multiplies with the schedule, ``optim.head_lr_mult`` and any time-varying
multiplier of the strategy it is combined with.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from torch import nn

from ft.freezing import ParamGroup
from ft.specs import Options

from ._split import Split, require_layers, split_model, trainable_param_groups
from .basic import ConfiguredStrategy


class LrDecayOptions(Options):
    """The ``lr_decay`` option, shared by strategies that can add layer-wise decay."""

    lr_decay: float | None = Field(
        None, gt=0, le=1,
        description="layer-wise LR decay on top of this strategy: the backbone group d groups below the head "
                    "trains at lr * lr_decay**d (head: d = 0); unset = no decay")


def scale_by_depth(groups: list[ParamGroup], split: Split, base: float | None, strategy: str,
                   option: str | None = "lr_decay") -> list[ParamGroup]:
    """Multiply each group's static ``lr_mult`` by ``base ** depth`` (no-op for None)."""
    if base is None:
        return groups
    require_layers(split, strategy, option)
    depth = split.depth()
    for group in groups:
        group.lr_mult *= base ** depth[group.name]
    return groups


class DiscriminativeLrOptions(Options):
    """Options of ``discriminative_lr``."""

    mode: Literal["factor", "layerwise"] = Field(
        "factor", description="factor: lr / factor**depth (ULMFiT); layerwise: lr * decay**depth (BEiT, timm)")
    factor: float = Field(2.6, ge=1, description="mode = 'factor': ratio between neighbouring groups' learning rates")
    decay: float = Field(0.75, gt=0, le=1, description="mode = 'layerwise': per-group decay of the learning rate")

    @model_validator(mode="after")
    def _option_matches_mode(self) -> "DiscriminativeLrOptions":
        # a value that the chosen mode ignores is almost certainly a mistake; its
        # default is fine (a resolved recipe writes every option out)
        unused = "decay" if self.mode == "factor" else "factor"
        if getattr(self, unused) != type(self).model_fields[unused].default:
            used = "factor" if unused == "decay" else "decay"
            other = "layerwise" if self.mode == "factor" else "factor"
            raise ValueError(f"{unused!r} is only used with mode = {other!r}; mode = {self.mode!r} uses {used!r}")
        return self

    @property
    def base(self) -> float:
        """The per-group ratio: ``1 / factor`` or ``decay``."""
        return 1.0 / self.factor if self.mode == "factor" else self.decay


class DiscriminativeLrStrategy(ConfiguredStrategy):
    """Everything trains; learning rates decay geometrically from the head down."""

    name = "discriminative_lr"
    options: DiscriminativeLrOptions

    def apply(self, model: nn.Module) -> None:
        require_layers(split_model(model, self.name), self.name)
        model.requires_grad_(True)

    def param_groups(self, model: nn.Module) -> list[ParamGroup]:
        split = split_model(model, self.name)
        return scale_by_depth(trainable_param_groups(split), split, self.options.base, self.name, option=None)
