"""Strategies whose frozen part changes over time: ``gradual_unfreeze``, ``lp_ft``.

Both freeze through the learning rate, not ``requires_grad``: a frozen group
has multiplier 0 and every parameter keeps ``requires_grad=True``, so the
set of parameters with gradients never changes and DDP stays correct. AdamW
(foreach, single-tensor, fused) and SGD with learning rate 0 leave a
parameter bit-identical, weight decay included (PyTorch applies decoupled
decay as ``p *= 1 - lr * wd``, and SGD's coupled decay is scaled by ``lr``
too). Not so AdamW's single-tensor ``capturable``/``differentiable`` path: it
divides by the learning rate and turns elements whose gradient was always
exactly 0 into NaN; the core never selects it. When a group's multiplier leaves 0
the trainer clears its optimizer state, so the moments gathered while it was
frozen do not leak into its first updates. BatchNorm layers of frozen groups
are kept in eval mode so their running statistics do not move either.

``gradual_unfreeze`` (Howard & Ruder 2018, ULMFiT, "gradual unfreezing"):
epoch 0 trains the head only; every ``every`` epochs one more backbone group,
from the top, joins. Combined with ``lr_decay`` it is ULMFiT's recipe
(gradual unfreezing + discriminative fine-tuning).

``lp_ft`` (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features
and Underperform Out-of-Distribution"): train a linear probe first, then
fine-tune everything. Starting the fine-tuning from a good head keeps the
early, large head gradients from distorting the pretrained features, which
helps most out of distribution. The paper fine-tunes the whole network at one
small learning rate, so both ``ft_lr_mult`` and ``head_ft_lr_mult`` default
to 0.1.
"""

from __future__ import annotations

from pydantic import Field
from torch import nn

from ft.contracts import HEAD_GROUP
from ft.freezing import ParamGroup, Progress

from ._split import require_layers, split_model, train_with_frozen_norms, trainable_param_groups
from .basic import ConfiguredStrategy
from .layerwise import LrDecayOptions, scale_by_depth


class _LrFrozenStrategy(ConfiguredStrategy):
    """Shared by strategies that freeze by a 0 learning-rate multiplier."""

    _depth: dict[str, int] | None = None  # group name -> depth below the head, set by apply

    def apply(self, model: nn.Module) -> None:
        self._depth = split_model(model, self.name).depth()
        model.requires_grad_(True)

    def depth(self) -> dict[str, int]:
        """Group name -> depth below the head (head 0), as found by ``apply``."""
        if self._depth is None:
            raise RuntimeError(f"freeze strategy {self.name!r}: apply(model) must run before the schedule is asked")
        return self._depth

    def param_groups(self, model: nn.Module) -> list[ParamGroup]:
        split = split_model(model, self.name)
        return scale_by_depth(trainable_param_groups(split), split, self.options.lr_decay, self.name)


class GradualUnfreezeOptions(LrDecayOptions):
    """Options of ``gradual_unfreeze``."""

    every: int = Field(1, ge=1, description="epochs between unfreezing one more backbone layer group (from the top)")


class GradualUnfreezeStrategy(_LrFrozenStrategy):
    """Head first; then one backbone group more, from the top, every ``every`` epochs."""

    name = "gradual_unfreeze"
    options: GradualUnfreezeOptions

    def milestone(self, group: str) -> int:
        """The first epoch (0-based) in which ``group`` trains."""
        return self.depth().get(group, 0) * self.options.every

    def apply(self, model: nn.Module) -> None:
        require_layers(split_model(model, self.name), self.name)
        super().apply(model)

    def lr_multiplier(self, group: str, progress: Progress) -> float:
        return 1.0 if progress.epoch >= self.milestone(group) else 0.0

    def backbone_frozen(self, epoch: int) -> bool:
        return epoch < self.options.every

    def set_train_mode(self, model: nn.Module, epoch: int) -> None:
        frozen = [name for name in self.depth() if epoch < self.milestone(name)]
        train_with_frozen_norms(self, model, epoch, frozen)


class LpFtOptions(LrDecayOptions):
    """Options of ``lp_ft``."""

    probe_epochs: int = Field(2, ge=1, description="epochs of linear probing (backbone frozen) before fine-tuning")
    ft_lr_mult: float = Field(0.1, gt=0, description="backbone learning rate during fine-tuning, as a fraction of lr")
    head_ft_lr_mult: float = Field(0.1, gt=0, description="head learning rate during fine-tuning, as a fraction of lr")


class LpFtStrategy(_LrFrozenStrategy):
    """Linear probe for ``probe_epochs`` epochs, then fine-tune everything at a lower rate."""

    name = "lp_ft"
    options: LpFtOptions

    def lr_multiplier(self, group: str, progress: Progress) -> float:
        probing = progress.epoch < self.options.probe_epochs
        if group == HEAD_GROUP:
            return 1.0 if probing else self.options.head_ft_lr_mult
        return 0.0 if probing else self.options.ft_lr_mult

    def backbone_frozen(self, epoch: int) -> bool:
        return epoch < self.options.probe_epochs
