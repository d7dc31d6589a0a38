"""BatchNorm over the global batch of all DDP ranks, on CPU and GPU alike.

With ``train.sync_batchnorm = true`` the trainer runs the forward pass inside
:func:`sync_batch_norm`. Every BatchNorm layer in training mode then
normalises with the mean and variance of the whole global batch (every
rank's examples) and updates its running statistics with them, so two ranks
with batch 16 each train like one process with batch 32. Eval mode and
single-process runs are untouched.

Why not ``torch.nn.SyncBatchNorm``:

* it runs on GPU only ("SyncBatchNorm expected input tensor to be on GPU"),
  and ftkit's multi-process tests run on CPU with the gloo backend;
* ``convert_sync_batchnorm`` swaps every ``_BatchNorm`` subclass for a plain
  ``SyncBatchNorm``, silently dropping what the subclass adds: timm's
  ``BatchNormAct2d`` (EfficientNet) loses its activation.

So instead of swapping modules, this swaps the one function they all call,
``torch.nn.functional.batch_norm``, which torch's ``_BatchNorm.forward`` and
timm's norm+act layers look up on ``torch.nn.functional`` at call time. The
layers, their state_dict keys and what they do after normalising stay as
they are, and the core never needs to import timm.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm


def has_batch_norm(module: nn.Module) -> bool:
    """Whether any layer of ``module`` is a BatchNorm (a ``_BatchNorm``
    subclass, which includes timm's norm+act layers)."""
    return any(isinstance(m, _BatchNorm) for m in module.modules())


@contextlib.contextmanager
def sync_batch_norm(group: dist.ProcessGroup | None = None) -> Iterator[None]:
    """Inside the block, BatchNorm in training mode uses the statistics of the
    global batch over ``group`` (default: the default process group).

    Wrap the training forward pass only; the backward may run outside the
    block (it replays what the forward recorded, collectives included).
    Every rank of ``group`` must run the same BatchNorm layers in the same
    order, as with ``torch.nn.SyncBatchNorm``. A layer without running
    statistics (``track_running_stats=False``) normalises with batch
    statistics even in eval mode, and inside the block those are synced too,
    so an evaluation on rank 0 alone must run outside it. Where
    ``torch.distributed`` is not initialised or ``group`` has one rank,
    nothing changes. The patch is process-wide (all threads see it); nested
    blocks are harmless: the innermost ``group`` wins and each exit restores
    what it found.
    """
    previous = F.batch_norm
    # Fall back to torch's own function, never to an outer block's wrapper,
    # which would sync over the outer group.
    unsynced = getattr(previous, "_ft_unsynced", previous)

    def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                   eps=1e-5):
        if training and _world_size(group) > 1:
            return _global_batch_norm(input, running_mean, running_var, weight, bias, momentum, eps, group)
        return unsynced(input, running_mean, running_var, weight, bias, training, momentum, eps)

    batch_norm._ft_unsynced = unsynced
    F.batch_norm = batch_norm
    try:
        yield
    finally:
        F.batch_norm = previous


def _world_size(group: dist.ProcessGroup | None) -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)


def _global_batch_norm(x, running_mean, running_var, weight, bias, momentum, eps, group):
    """F.batch_norm in training mode, with statistics over every rank's ``x``.

    Each rank reduces its shard to (count, mean, M2) per channel, centred
    locally with ``torch.var_mean``; one all-gather brings every rank's
    triple, and Chan's parallel formula combines them in float64. Nothing
    subtracts E[x]^2 from E[x^2], so channels with a large mean and a small
    spread keep their variance in float32.
    """
    channels = x.shape[1]
    dims = [0, *range(2, x.dim())]
    shape = [1, channels] + [1] * (x.dim() - 2)
    # Half and bfloat16 inputs are normalised in float32 and returned in their
    # own dtype, as F.batch_norm does.
    compute = torch.promote_types(x.dtype, torch.float32)
    xc = x.to(compute)
    count = x.numel() // channels
    if count:
        var, mean = torch.var_mean(xc, dim=dims, correction=0)
    else:  # an empty shard must still take part in the all-gather
        var = mean = xc.new_zeros(channels)
    local = torch.cat([torch.full((1,), count, dtype=torch.float64, device=x.device),
                       mean.double(), var.double() * count])
    rows = _AllGather.apply(local, group)
    counts, means, m2s = rows[:, :1], rows[:, 1:1 + channels], rows[:, 1 + channels:]
    total = counts.sum()
    global_mean = (counts * means).sum(0) / total
    m2 = m2s.sum(0) + (counts * (means - global_mean) ** 2).sum(0)

    with torch.no_grad():  # same update as F.batch_norm: the running variance is unbiased
        if running_mean is not None:
            running_mean.lerp_(global_mean.to(running_mean.dtype), momentum)
        if running_var is not None:
            running_var.lerp_((m2 / (total - 1)).to(running_var.dtype), momentum)

    scale = torch.rsqrt(m2 / total + eps).to(compute)
    if weight is not None:
        scale = scale * weight.to(compute)
    y = (xc - global_mean.to(compute).view(shape)) * scale.view(shape)
    if bias is not None:
        y = y + bias.to(compute).view(shape)
    return y.to(x.dtype)


class _AllGather(torch.autograd.Function):
    """Stack one row per rank; the backward hands each rank the sum of every
    rank's gradient for its row (the loss is the sum of the ranks' losses).

    Written out rather than taken from ``torch.distributed.nn.functional``:
    those collectives are deprecated (a FutureWarning from every call site
    that reaches them), and this one needs only all_gather and all_reduce,
    which gloo and NCCL both have.
    """

    @staticmethod
    def forward(ctx, row, group):
        ctx.group = group
        row = row.contiguous()
        rows = [torch.empty_like(row) for _ in range(dist.get_world_size(group))]
        dist.all_gather(rows, row, group=group)
        return torch.stack(rows)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone(memory_format=torch.contiguous_format)  # all_reduce writes in place
        dist.all_reduce(grad, group=ctx.group)
        return grad[dist.get_rank(ctx.group)], None
