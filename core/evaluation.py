"""One evaluation pass: loss and task metrics, sharded across ranks.

Under DDP each rank evaluates its share of the split's batches (rank ``r``
of ``N``: batches ``r, r + N, ...``, each the batch one process would see)
and the ranks' results are merged: the loss as an :class:`ExactSum` of
per-batch sums, the task metrics through :meth:`ft.Evaluator.merge`. The
merged figures are one process's, to the last bit, in about ``1/N`` of the
time. The evaluator passed in is left holding the merged state, so what it
reports afterwards (:meth:`ft.Evaluator.report`) is one process's too.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils.data import DataLoader

from .contracts import Evaluator, batch_size_of
from .data import ShardedBatches
from .distributed import Distributed
from .metrics import ExactSum


@torch.no_grad()
def evaluate_batches(loader: DataLoader, forward: Callable[[Any], torch.Tensor], loss_fn: Callable,
                     evaluator: Evaluator | None, prepare: Callable[[Any, Any], tuple[Any, Any]],
                     autocast: Callable[[], Any], dist: Distributed) -> dict[str, float]:
    """``{"loss": ..., **evaluator.compute()}`` over ``loader``'s batches,
    merged over ranks when its sampler shards them (``evaluator`` then
    holds the whole split's state). ``prepare(inputs, targets)`` puts a
    batch on the device; ``autocast()`` the precision."""
    sampler = loader.batch_sampler
    real = len(loader) - (sampler.padding if isinstance(sampler, ShardedBatches) else 0)
    losses: list[torch.Tensor] = []
    count = 0
    nonfinite = torch.zeros((), dtype=torch.long)  # outputs holding NaN/+inf (no sync per batch)
    for i, (inputs, targets) in enumerate(loader):
        inputs, targets = prepare(inputs, targets)
        with autocast():
            outputs = forward(inputs)
            loss = loss_fn(outputs, targets)
        if i >= real:
            continue  # a repeated batch that keeps FSDP ranks in step; not counted
        n = batch_size_of(targets)
        losses.append(loss.detach().double() * n)
        count += n
        # -inf is how scores mask what may not be chosen (padding, seen items); NaN and +inf are breakage
        nonfinite = nonfinite + (torch.isnan(outputs.detach()) | torch.isposinf(outputs.detach())).sum().cpu()
        if evaluator is not None:
            evaluator.update(outputs.float(), targets)
    loss_sum = ExactSum()
    for value in (torch.stack(losses).tolist() if losses else []):
        loss_sum.add(value)
    if isinstance(sampler, ShardedBatches) and sampler.sharded:
        loss_sum, count, merged, nonfinite = merge_shards(loss_sum, count, evaluator, dist, int(nonfinite))
        if evaluator is not None:  # the caller's object holds the merged state (it may read the report)
            vars(evaluator).update(vars(merged))
    out = {"loss": loss_sum.value / max(1, count)}
    if evaluator is not None:
        out.update(evaluator.compute())
    if int(nonfinite):  # arg-maxing NaN scores reads as some accuracy: no metric of such outputs is a number
        out = {key: float("nan") for key in out}
    return out


def merge_shards(loss_sum: ExactSum, count: int, evaluator: Evaluator | None, dist: Distributed,
                 nonfinite: int = 0) -> tuple[ExactSum, int, Evaluator | None, int]:
    """Every rank's share of a split, merged in rank order on every rank
    (``nonfinite``: the count of NaN/inf outputs, summed)."""
    shards = dist.all_gather_object((loss_sum, count, evaluator.to_cpu() if evaluator else None, nonfinite))
    loss_sum, count, evaluator, nonfinite = shards[0]
    for other_loss, other_count, other_evaluator, other_nonfinite in shards[1:]:
        loss_sum.merge(other_loss)
        count += other_count
        nonfinite += other_nonfinite
        if evaluator is not None:
            evaluator.merge(other_evaluator)
    return loss_sum, count, evaluator, nonfinite
