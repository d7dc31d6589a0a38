"""Batches of token sequences: dynamic padding and length-bucketed order.

Snippets of text vary a lot in length (Rotten Tomatoes: median 26 tokens,
longest 78). Padding every batch to ``max_length`` spends most of the
compute on padding; padding each batch to its own longest item
(:class:`PadCollate`) removes most of it, and putting items of similar
length in the same batch (:func:`bucket_order`) removes most of the rest.

Bucketing groups the epoch's seeded permutation with the epoch's generator
(``DataBundle.batcher``), so the batches stay a pure function of ``(seed,
epoch)`` and a run resumed mid-epoch, which skips the batches it has done,
sees the same batches as an unbroken run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

#: the tokenizer outputs the encoders take, padded with 0 except ``input_ids``
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class PadCollate:
    """``[(inputs, target), ...]`` -> ``(padded inputs, targets)``.

    Every key of the inputs (``input_ids``, ``attention_mask``,
    ``token_type_ids``: 1-D long tensors) is right-padded to the batch's
    longest item, or to ``pad_to`` when given (static shapes, the benchmark's
    baseline). ``input_ids`` are padded with ``pad_id``, the rest with 0, so
    padded positions have attention mask 0. A class, not a closure, so that
    DataLoader workers can pickle it.
    """

    def __init__(self, pad_id: int, pad_to: int | None = None):
        self.pad_id = int(pad_id)
        self.pad_to = pad_to

    def __call__(self, batch: list[tuple[dict[str, torch.Tensor], Any]]) -> tuple[dict[str, torch.Tensor], Any]:
        inputs = [item[0] for item in batch]
        targets = [item[1] for item in batch]
        width = max(len(x["input_ids"]) for x in inputs)
        if self.pad_to is not None:
            width = max(width, self.pad_to)
        padded = {}
        for key in inputs[0]:
            fill = self.pad_id if key == "input_ids" else 0
            out = torch.full((len(inputs), width), fill, dtype=torch.long)
            for row, x in zip(out, inputs):
                row[: len(x[key])] = x[key]
            padded[key] = out
        return padded, stack_targets(targets)


def stack_targets(targets: list) -> torch.Tensor:
    """Targets of one batch as a tensor (stacked tensors, or numbers)."""
    if isinstance(targets[0], torch.Tensor):
        return torch.stack(targets)
    return torch.tensor(targets)


def bucket_batches(order: Sequence[int], lengths: Sequence[int], batch_size: int, generator: torch.Generator,
                   pool_batches: int = 50) -> list[list[int]]:
    """One epoch's training batches, each of items of similar length.

    ``order`` is the epoch's seeded permutation (this rank's share under
    DDP) and ``generator`` the epoch's generator, both pure functions of
    ``(seed, epoch)``. The order is cut into pools of ``pool_batches *
    batch_size`` indices; each pool is sorted by length (stable, so ties
    keep their random order) and cut into batches; then all batches are
    shuffled with ``generator``, so long and short batches alternate at
    random instead of running from short to long. Pools keep some
    randomness in which items meet (one pool per epoch would make the
    batches nearly the same every epoch). There are ``ceil(len(order) /
    batch_size)`` batches, as without bucketing, so DDP ranks stay in step.
    """
    if batch_size < 1 or pool_batches < 1:
        raise ValueError("batch_size and pool_batches must be at least 1")
    order = list(order)
    pool = batch_size * pool_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


@dataclass(frozen=True)
class LengthBuckets:
    """A ``DataBundle.batcher``: :func:`bucket_batches` bound to the training
    set's ``lengths`` (tokens per item). The text formats set it when
    ``data.bucket`` is true (the default)."""

    lengths: tuple[int, ...]
    pool_batches: int = 50

    def __call__(self, order: Sequence[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
        return bucket_batches(order, self.lengths, batch_size, generator, self.pool_batches)


def padding_stats(lengths: Sequence[int], batches: Sequence[Sequence[int]], pad_to: int | None = None) -> dict:
    """Real and padded token counts of a list of batches (index lists)."""
    real = sum(lengths[i] for b in batches for i in b)
    padded = sum(len(b) * (pad_to or max(lengths[i] for i in b)) for b in batches)
    return {"real_tokens": real, "padded_tokens": padded, "efficiency": real / max(1, padded)}
