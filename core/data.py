"""Data loaders whose order is a pure function of (seed, epoch, rank).

That is what makes an exact resume possible: the order of epoch ``e`` is the
same whether the run was interrupted or not, and a run stopped mid-epoch
resumes at the next unseen batch.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class EpochSampler(Sampler[int]):
    """Seeded shuffling per epoch, sharded across DDP ranks, resumable.

    ``set_epoch(e)`` picks the order; ``set_start(i)`` skips the first ``i``
    indices of this rank's share (used once, when resuming mid-epoch).
    """

    def __init__(self, size: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_start(self, start: int) -> None:
        self.start = start

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        if self.world_size > 1:  # pad so every rank gets the same count
            order += order[: (-len(order)) % self.world_size]
            order = order[self.rank::self.world_size]
        return order

    def __iter__(self) -> Iterator[int]:
        order = self._indices()[self.start:]
        self.start = 0
        return iter(order)

    def __len__(self) -> int:
        return -(-self.size // self.world_size) - self.start


def make_loader(dataset: Dataset, *, batch_size: int, train: bool, seed: int = 0, collate: Callable | None = None,
                num_workers: int = 0, rank: int = 0, world_size: int = 1, pin_memory: bool = False) -> DataLoader:
    """A DataLoader with an :class:`EpochSampler` and its own generator, so
    worker seeds never draw from (and shift) the global RNG."""
    sampler = EpochSampler(len(dataset), shuffle=train, seed=seed, rank=rank, world_size=world_size)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                      num_workers=num_workers, pin_memory=pin_memory, drop_last=False,
                      generator=torch.Generator().manual_seed(seed),
                      persistent_workers=False)


class TensorPairs(Dataset):
    """``(inputs[i], targets[i])`` from two aligned tensors (cached features,
    in-memory data)."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor):
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        return self.inputs[i], self.targets[i]
