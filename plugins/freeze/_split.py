"""How the built-in strategies see a model (machinery, not public API).

A strategy works on an :class:`ft.FtModel`: the backbone's layer groups
(input to output) and the head. This module splits a model that way, checks
that the split is sound (every backbone parameter in exactly one group), maps
BatchNorm layers to their groups, and words the errors a strategy raises when
the backbone cannot be split as asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ft.contracts import HEAD_GROUP, LayerGroup
from ft.errors import FtError
from ft.freezing import FreezeStrategy, ParamGroup


@dataclass
class Split:
    """A model as strategies see it: the backbone's groups and the head."""

    backbone: nn.Module
    head: nn.Module
    groups: list[LayerGroup]  # backbone groups, input to output
    head_group: LayerGroup

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.groups]

    def depth(self) -> dict[str, int]:
        """Distance from the head: head 0, top backbone group 1, ... bottom n."""
        n = len(self.groups)
        return {HEAD_GROUP: 0, **{g.name: n - i for i, g in enumerate(self.groups)}}


def groups_text(groups: list[LayerGroup]) -> str:
    """``"3 layer groups: embed, block1, block2"`` for error messages."""
    shown = ", ".join(g.name for g in groups[:24]) + (", ..." if len(groups) > 24 else "")
    return f"{len(groups)} layer group{'s' if len(groups) != 1 else ''}: {shown}"


def strategy_error(strategy: str, message: str, *, option: str | None = None, hint: str | None = None) -> FtError:
    """An FtError located at the strategy (and option) the user chose."""
    where = f"freeze.{option} (strategy {strategy!r})" if option else f"freeze.strategy = {strategy!r}"
    return FtError(message, where=where, hint=hint)


def split_model(model: nn.Module, strategy: str) -> Split:
    """Split an FtModel into backbone groups and head, checking the groups.

    The backbone's ``layer_groups()`` must hold every backbone parameter
    exactly once: a parameter left out would silently never train (it is in
    no optimizer group), and one listed twice breaks the optimizer.
    """
    backbone, head = getattr(model, "backbone", None), getattr(model, "head", None)
    if backbone is None or head is None or not hasattr(backbone, "layer_groups"):
        raise strategy_error(strategy, f"needs an ft.FtModel (a backbone with layer_groups() and a head), "
                                       f"got {type(model).__name__}",
                             hint="use strategy 'full' for a bare module, or wrap it in ft.FtModel")
    groups = list(backbone.layer_groups())
    if not groups:
        raise strategy_error(strategy, f"backbone {type(backbone).__name__} has no layer groups")
    seen: dict[int, str] = {}
    for group in groups:
        for p in group.params:
            if id(p) in seen:
                raise strategy_error(strategy, f"a parameter of backbone {type(backbone).__name__} is in two layer "
                                               f"groups ({seen[id(p)]!r} and {group.name!r})",
                                     hint="fix the backbone's layer_groups(): each parameter in exactly one group")
            seen[id(p)] = group.name
    missing = [name for name, p in backbone.named_parameters() if id(p) not in seen]
    if missing:
        shown = ", ".join(missing[:8]) + (", ..." if len(missing) > 8 else "")
        raise strategy_error(strategy, f"backbone {type(backbone).__name__} leaves {len(missing)} parameter(s) "
                                       f"out of its layer groups ({shown}); they would never train",
                             hint="fix the backbone's layer_groups() (ft.groups_by_prefix checks this)")
    if any(g.name == HEAD_GROUP for g in groups):
        raise strategy_error(strategy, f"a backbone layer group is named {HEAD_GROUP!r}, the head's group name",
                             hint="rename that group in the backbone's layer_groups()")
    return Split(backbone, head, groups, LayerGroup(HEAD_GROUP, list(head.parameters())))


def require_layers(split: Split, strategy: str, option: str | None = None) -> None:
    """Layer-wise strategies need a backbone split into at least two groups;
    with one group they would silently reduce to a head/backbone LR ratio."""
    if len(split.groups) < 2:
        raise strategy_error(strategy, f"needs the backbone split into several layer groups, but "
                                       f"{type(split.backbone).__name__} has {groups_text(split.groups)}",
                             option=option,
                             hint="give the backbone plugin a layer_groups() from input to output (ft.groups_by_prefix), "
                                  "or use 'full' with optim.head_lr_mult, or 'lp_ft' without lr_decay")


def norm_layers_by_group(split: Split) -> dict[str, list[nn.Module]]:
    """BatchNorm layers with running statistics, by the layer group they belong to.

    A BatchNorm with affine parameters belongs to its weight's group. One
    without parameters (``affine=False``) belongs to the group of the last
    parameterised module before it, since it normalises that layer's output.
    """
    group_of = {id(p): g.name for g in split.groups for p in g.params}
    current = split.groups[0].name
    out: dict[str, list[nn.Module]] = {g.name: [] for g in split.groups}
    for module in split.backbone.modules():
        own = next(iter(module.parameters(recurse=False)), None)
        if own is not None and id(own) in group_of:
            current = group_of[id(own)]
        if isinstance(module, _BatchNorm) and module.track_running_stats:
            out[current].append(module)
    return out


def batch_norms(backbone: nn.Module) -> list[_BatchNorm]:
    """Every BatchNorm layer of ``backbone`` that tracks running statistics."""
    return [m for m in backbone.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def train_with_frozen_norms(strategy: FreezeStrategy, model: nn.Module, epoch: int, frozen: list[str]) -> None:
    """The base train mode, then BatchNorm layers of ``frozen`` groups in eval.

    Frozen weights are not enough: a BatchNorm in train mode still moves its
    running statistics, so the frozen layers would compute something else
    at evaluation time. Dropout is left alone (it has no state).
    """
    FreezeStrategy.set_train_mode(strategy, model, epoch)
    if not frozen:
        return
    by_group = norm_layers_by_group(split_model(model, strategy.name))
    for name in frozen:
        for module in by_group.get(name, []):
            module.eval()


def trainable_param_groups(split: Split) -> list[ParamGroup]:
    """One ParamGroup per layer group (backbone, then head) of its trainable
    parameters; groups with none are left out."""
    out = [ParamGroup(g.name, [p for p in g.params if p.requires_grad]) for g in [*split.groups, split.head_group]]
    return [g for g in out if g.params]
