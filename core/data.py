"""Data loaders whose batches are a pure function of (seed, epoch, rank).

That is what makes an exact resume possible: the order of epoch ``e`` is the
same whether the run was interrupted or not, and a run stopped mid-epoch
resumes at the next unseen batch. Random transforms (crops, noise,
SpecAugment) draw from a generator seeded per batch with ``(seed, rank,
epoch, batch)``, so they too are the same after a resume, whatever the
number of loader workers, and differ between ranks.

Evaluation batches are the split in order, cut into consecutive batches;
under DDP rank ``r`` takes batches ``r, r + W, r + 2W, ...`` (no padding, no
example twice), so every batch is the one a single process would see.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


#: Groups one epoch's (shuffled) indices into batches; must be a pure function
#: of its arguments. ``batcher(order, batch_size, generator) -> batches``.
Batcher = Callable[[list[int], int, torch.Generator], list[list[int]]]


def consecutive_batches(order: list[int], batch_size: int, generator: torch.Generator | None = None) -> list[list[int]]:
    """The default batcher: consecutive chunks of the epoch's order."""
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def batch_seed(seed: int, rank: int, epoch: int, batch: int) -> int:
    """The seed of one training batch's random transforms (63 bits)."""
    digest = hashlib.blake2b(f"{seed}:{rank}:{epoch}:{batch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class SeededBatch(list):
    """A batch's indices plus the seed its random transforms use."""

    __slots__ = ("seed",)

    def __init__(self, indices: list[int], seed: int | None = None):
        super().__init__(indices)
        self.seed = seed

    def __reduce__(self):  # travels to loader workers
        return (SeededBatch, (list(self), self.seed))


@contextlib.contextmanager
def forked_rng(seed: int):
    """torch (CPU), ``random`` and numpy's global generators seeded with
    ``seed`` inside the block and put back as they were after it, so the
    caller's random stream (dropout, the next batch) is untouched."""
    cpu = torch.default_generator  # (torch.manual_seed would also reseed every GPU: 100x slower)
    torch_state, py_state, np_state = cpu.get_state(), random.getstate(), np.random.get_state()
    cpu.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        cpu.set_state(torch_state)
        random.setstate(py_state)
        np.random.set_state(np_state)


class SeededFetch(Dataset):
    """A dataset view whose batched fetch runs under the batch's seed
    (``DataLoader`` calls ``__getitems__`` with the sampler's batch, in the
    main process or in a worker)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[i]

    def __getitems__(self, indices: list[int]) -> list:
        seed = getattr(indices, "seed", None)
        if seed is None:
            return [self.dataset[i] for i in indices]
        with forked_rng(seed):
            return [self.dataset[i] for i in indices]


class EpochBatchSampler(Sampler[list[int]]):
    """Seeded batches per epoch, sharded across DDP ranks, resumable.

    The epoch's order is a permutation drawn from ``(seed, epoch)``; a
    ``batcher`` (a data format's, e.g. length bucketing for text) groups it
    into batches, else consecutive chunks. Under DDP the batcher groups the
    whole order into global batches (``world_size`` times the batch) and
    each rank takes every ``world_size``-th index of each, so one optimizer
    step over all ranks sees exactly what a single process with the global
    batch would, bucketed or not. When the split does not divide by the
    world size, the first indices of the order are repeated so every rank
    has the same number of batches (as ``DistributedSampler`` does).
    ``set_start(b)`` skips this rank's first ``b`` batches once (resuming
    mid-epoch). Each batch carries its transform seed (:class:`SeededBatch`).
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
        if self.world_size == 1:
            return self.batcher(order, self.batch_size, g)
        ws = self.world_size
        order += order[: (-len(order)) % ws]  # pad so every rank gets the same count
        # batch the epoch as one process with the global batch would, then take this rank's share of each
        return [batch[self.rank::ws] for batch in self.batcher(order, self.batch_size * ws, g)]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches()
        start, self.start = self.start, 0
        return iter(SeededBatch(b, batch_seed(self.seed, self.rank, self.epoch, i))
                    for i, b in enumerate(batches) if i >= start)

    def __len__(self) -> int:
        return len(self._batches()) - self.start


class ShardedBatches(Sampler[list[int]]):
    """Evaluation batches: the split in order, in consecutive batches, rank
    ``r`` of ``W`` taking batches ``r, r + W, ...``. With ``even=True`` a rank
    short of the longest share runs the split's first batch once more (its
    :attr:`padding`, to be ignored) so every rank runs the same number of
    forwards (FSDP gathers weights in each). ``batches`` replaces the
    consecutive ones."""

    def __init__(self, size: int, batch_size: int, rank: int = 0, world_size: int = 1, even: bool = False,
                 batches: list[list[int]] | None = None):
        every = batches if batches is not None else consecutive_batches(list(range(size)), batch_size)
        self.sharded = world_size > 1
        self.batches = every[rank::world_size]
        #: each batch's place among the split's batches (None for a repeated one)
        self.positions: list[int | None] = list(range(rank, len(every), world_size))
        self.padding = 0
        if even:
            longest = -(-len(every) // world_size)
            self.padding = longest - len(self.batches)
            self.batches += [every[0]] * self.padding
            self.positions += [None] * self.padding

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def resolve_num_workers(setting: int | str, device: torch.device, local_world_size: int = 1) -> int:
    """``train.num_workers``: a number, or ``"auto"``: none on CPU (the
    workers would compete with the model for the same cores), on CUDA the
    CPU cores per local rank less one for the main process, at most 8."""
    if setting != "auto":
        return int(setting)
    if device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cores // max(1, local_world_size) - 1))


def make_loader(dataset: Dataset, *, batch_size: int, train: bool, seed: int = 0, collate: Callable | None = None,
                num_workers: int = 0, rank: int = 0, world_size: int = 1, pin_memory: bool = False,
                batcher: Batcher | None = None, persistent_workers: bool = False,
                prefetch_factor: int | None = None, shard_eval: bool = False, even: bool = False,
                seeded: bool = True) -> DataLoader:
    """A DataLoader over an :class:`EpochBatchSampler` (``train=True``) or
    :class:`ShardedBatches` (evaluation; sharded across ranks only with
    ``shard_eval``), with its own generator so worker seeds never draw from
    (and shift) the global RNG. ``seeded``: training batches fetched under
    their own seed (:class:`SeededFetch`; for random transforms, which
    would otherwise draw from the global generators)."""
    if train:
        sampler: Sampler = EpochBatchSampler(len(dataset), batch_size, shuffle=True, seed=seed, rank=rank,
                                             world_size=world_size, batcher=batcher)
        if seeded:
            dataset = SeededFetch(dataset)
    else:
        sampler = ShardedBatches(len(dataset), batch_size, rank, world_size, even) if shard_eval else \
            ShardedBatches(len(dataset), batch_size)
    if collate is None and isinstance(dataset, TensorPairs):
        dataset, collate = _WholeBatches(dataset), _whole_batch
    extra = {}
    if num_workers > 0:
        extra = {"persistent_workers": persistent_workers, "prefetch_factor": prefetch_factor}
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers,
                      pin_memory=pin_memory, generator=torch.Generator().manual_seed(seed), **extra)


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



class _WholeBatches(Dataset):
    """:class:`TensorPairs` fetched a batch at a time, in one indexing: a
    head trained on cached features takes a step in a millisecond, and a
    Python call per example would cost more than the step. Paired with
    :func:`_whole_batch` as the collate function."""

    def __init__(self, pairs: TensorPairs):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        return self.pairs[i]

    def __getitems__(self, indices: list[int]) -> list:
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return [(self.pairs.inputs[index], index_nested(self.pairs.targets, index))]


def _whole_batch(items: list) -> Any:
    return items[0]
