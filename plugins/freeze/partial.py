"""Strategies that train a fixed part of the backbone: ``freeze_bottom``, ``bitfit``.

``freeze_bottom`` freezes the first ``n`` backbone layer groups: the lowest
layers hold the most generic features (Yosinski et al. 2014), so with little
data they are kept and the upper layers adapt. Their BatchNorm layers stay in
eval mode so their running statistics do not drift either.

``bitfit`` trains only the backbone's bias terms and the head (Ben Zaken,
Ravfogel & Goldberg 2021, "BitFit: Simple Parameter-efficient Fine-tuning
for Transformer-based Masked Language-models"): about 0.1% of a
transformer's weights, competitive with full fine-tuning on small and
medium data. BatchNorm layers keep training mode: every layer's input
changes as the biases move, so running statistics must follow.
"""

from __future__ import annotations

from pydantic import Field
from torch import nn

from ft.freezing import ParamGroup

from ._split import groups_text, split_model, strategy_error, train_with_frozen_norms, trainable_param_groups
from .basic import ConfiguredStrategy
from .layerwise import LrDecayOptions, scale_by_depth


class FreezeBottomOptions(LrDecayOptions):
    """Options of ``freeze_bottom``."""

    n: int = Field(..., ge=1, description="number of backbone layer groups, from the input, kept frozen")


class FreezeBottomStrategy(ConfiguredStrategy):
    """The first ``n`` backbone layer groups are frozen; the rest and the head train."""

    name = "freeze_bottom"
    options: FreezeBottomOptions

    def _frozen(self, model: nn.Module) -> list[str]:
        split = split_model(model, self.name)
        n = self.options.n
        if n >= len(split.groups):
            raise strategy_error(
                self.name, f"n = {n} would freeze every backbone layer group, but the backbone "
                           f"{type(split.backbone).__name__} has {groups_text(split.groups)}",
                option="n",
                hint=f"use n <= {len(split.groups) - 1}, or strategy = 'linear_probe' to freeze the whole backbone"
                if len(split.groups) > 1 else "use strategy = 'linear_probe' to freeze the whole backbone")
        return split.names[:n]

    def apply(self, model: nn.Module) -> None:
        frozen = set(self._frozen(model))
        model.requires_grad_(True)
        for group in split_model(model, self.name).groups:
            if group.name in frozen:
                for p in group.params:
                    p.requires_grad_(False)

    def param_groups(self, model: nn.Module) -> list[ParamGroup]:
        split = split_model(model, self.name)
        return scale_by_depth(trainable_param_groups(split), split, self.options.lr_decay, self.name)

    def set_train_mode(self, model: nn.Module, epoch: int) -> None:
        train_with_frozen_norms(self, model, epoch, self._frozen(model))


def is_bias(name: str) -> bool:
    """A bias term: ``...bias`` (linear, conv, norm shifts) or a recurrent
    layer's ``bias_ih_l0`` / ``bias_hh_l1_reverse`` (nn.LSTM, nn.GRU, nn.RNN)."""
    return name.rsplit(".", 1)[-1].startswith("bias")


class BitFitStrategy(ConfiguredStrategy):
    """Only the backbone's biases (``*bias``, and recurrent layers' ``bias_ih_*`` / ``bias_hh_*``)
    and the head train."""

    name = "bitfit"

    def apply(self, model: nn.Module) -> None:
        split = split_model(model, self.name)
        model.requires_grad_(False)
        biases = [p for name, p in split.backbone.named_parameters() if is_bias(name)]
        if not biases:
            raise strategy_error(self.name, f"backbone {type(split.backbone).__name__} has no bias parameters "
                                            f"(no parameter named '*bias' or 'bias_*'), so nothing would train in it",
                                 hint="use 'lora' or 'linear_probe' for a backbone without biases")
        for p in biases:
            p.requires_grad_(True)
        split.head.requires_grad_(True)
