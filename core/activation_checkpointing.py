"""Activation checkpointing: keep fewer activations, recompute them in backward.

``train.activation_checkpointing = true`` asks the backbone to checkpoint its
blocks (:meth:`ft.Backbone.enable_activation_checkpointing`). A backbone
whose library already knows how (timm's ``set_grad_checkpointing``,
transformers' ``gradient_checkpointing_enable``) calls that; any other can
hand its repeated blocks to :func:`checkpoint_modules`. Memory for
activations drops from one set per block to one per checkpointed segment,
for about one extra forward pass of compute. Gradients are unchanged (the
recomputed forward replays the same random state, so dropout masks match)
and BatchNorm counts each batch into its running statistics once.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Iterable

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

#: flag set on a module whose forward is checkpointed
_FLAG = "_ft_activation_checkpointing"


def checkpoint_modules(modules: Iterable[nn.Module]) -> int:
    """Checkpoint each module's forward while training with gradients on.

    In eval mode or under ``torch.no_grad()`` the module runs as usual.
    Calling this twice on the same module is harmless. Returns the number
    of modules checkpointed.
    """
    count = 0
    for module in modules:
        if not getattr(module, _FLAG, False):
            setattr(module, _FLAG, True)
            # a partial over the module (not a bound method) survives copy.deepcopy and pickling
            module.forward = functools.partial(_checkpointed_forward, module)
        count += 1
    return count


def _checkpointed_forward(module: nn.Module, *args, **kwargs):
    forward = functools.partial(type(module).forward, module)
    if module.training and torch.is_grad_enabled():
        norms = [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
        context = functools.partial(_contexts, norms, F.batch_norm)
        return checkpoint(forward, *args, use_reentrant=False, context_fn=context, **kwargs)
    return forward(*args, **kwargs)


def _contexts(norms: list[_BatchNorm], batch_norm) -> tuple:
    """(forward context, recompute context) for torch's checkpoint."""
    return contextlib.nullcontext(), _replay(norms, batch_norm)


@contextlib.contextmanager
def _replay(norms: list[_BatchNorm], batch_norm):
    """The recompute in backward replays the forward exactly: with the
    BatchNorm function the forward used (the global-batch one under
    ``train.sync_batchnorm``, whose block has ended by then), and without
    counting the batch into the running statistics a second time."""
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
    current, F.batch_norm = F.batch_norm, batch_norm
    try:
        yield
    finally:
        F.batch_norm = current
        with torch.no_grad():
            for m, (mean, var, count) in zip(norms, saved):
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)


def is_checkpointed(module: nn.Module) -> bool:
    """Whether :func:`checkpoint_modules` wrapped ``module``."""
    return getattr(module, _FLAG, False)
