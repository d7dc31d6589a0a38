"""Data loaders whose batches are a pure function of (seed, epoch, rank).

That is what makes an exact resume possible: the order of epoch ``e`` is the
same whether the run was interrupted or not, and a run stopped mid-epoch
resumes at the next unseen batch.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


#: Groups one epoch's (shuffled) indices into batches; must be a pure function
#: of its arguments. ``batcher(order, batch_size, generator) -> batches``.
Batcher = Callable[[list[int], int, torch.Generator], list[list[int]]]


def consecutive_batches(order: list[int], batch_size: int, generator: torch.Generator | None = None) -> list[list[int]]:
    """The default batcher: consecutive chunks of the epoch's order."""
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


class EpochBatchSampler(Sampler[list[int]]):
    """Seeded batches per epoch, sharded across DDP ranks, resumable.

    The epoch's order is a permutation drawn from ``(seed, epoch)``; a
    ``batcher`` (a data format's, e.g. length bucketing for text) groups it
    into batches, else consecutive chunks. Ranks take every
    ``world_size``-th index before batching, so one optimizer step over all
    ranks sees what a single process with ``world_size`` times the batch
    would (with the default batcher). ``set_start(b)``
    skips this rank's first ``b`` batches once (resuming mid-epoch).
    """

    def __init__(self, size: int, batch_size: int, *, shuffle: bool, seed: int = 0, rank: int = 0,
                 world_size: int = 1, batcher: Batcher | None = None):
        self.size, self.batch_size, self.shuffle, self.seed = size, batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.batcher = batcher or consecutive_batches
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_start(self, batches: int) -> None:
        self.start = batches

    def _batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=g).tolist() if self.shuffle else list(range(self.size))
        if self.world_size > 1:  # pad so every rank gets the same count, then take this rank's share
            order += order[: (-len(order)) % self.world_size]
            order = order[self.rank::self.world_size]
        return self.batcher(order, self.batch_size, g)

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches()[self.start:]
        self.start = 0
        return iter(batches)

    def __len__(self) -> int:
        return len(self._batches()) - self.start


def make_loader(dataset: Dataset, *, batch_size: int, train: bool, seed: int = 0, collate: Callable | None = None,
                num_workers: int = 0, rank: int = 0, world_size: int = 1, pin_memory: bool = False,
                batcher: Batcher | None = None) -> DataLoader:
    """A DataLoader over an :class:`EpochBatchSampler`, with its own
    generator so worker seeds never draw from (and shift) the global RNG."""
    sampler = EpochBatchSampler(len(dataset), batch_size, shuffle=train, seed=seed, rank=rank,
                                world_size=world_size, batcher=batcher)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers,
                      pin_memory=pin_memory, generator=torch.Generator().manual_seed(seed))


def index_nested(obj: Any, i: Any) -> Any:
    """``obj[i]`` through dicts, lists and tuples of tensors."""
    if isinstance(obj, dict):
        return {k: index_nested(v, i) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(index_nested(v, i) for v in obj)
    return obj[i]


def cat_nested(parts: list[Any]) -> Any:
    """Concatenate along dim 0 batches that are tensors or dicts/lists/tuples of them."""
    first = parts[0]
    if isinstance(first, dict):
        return {k: cat_nested([p[k] for p in parts]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(cat_nested([p[j] for p in parts]) for j in range(len(first)))
    return torch.cat(parts)


class TensorPairs(Dataset):
    """``(inputs[i], targets[i])`` from aligned tensors (cached features,
    in-memory data); targets may be a dict/list/tuple of tensors."""

    def __init__(self, inputs: torch.Tensor, targets: Any):
        from .contracts import batch_size_of

        if len(inputs) != batch_size_of(targets):
            raise ValueError(f"{len(inputs)} inputs but {batch_size_of(targets)} targets")
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        return self.inputs[i], index_nested(self.targets, i)
