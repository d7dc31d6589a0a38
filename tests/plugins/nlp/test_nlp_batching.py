"""Length-bucketed batches: similar lengths share a batch, every index is
used once, the batches are a pure function of (seed, epoch), and a resumed
epoch sees the same remaining batches. Exercised through the core's
``EpochBatchSampler``, as the trainer uses ``DataBundle.batcher``."""

from __future__ import annotations

import random

import torch

from ft.data import EpochBatchSampler, consecutive_batches
from ft.plugins.nlp.batching import LengthBuckets, bucket_batches, padding_stats


def lengths_like_reviews(n: int, seed: int = 0) -> list[int]:
    """Token counts shaped like Rotten Tomatoes snippets (median ~26, long tail)."""
    rng = random.Random(seed)
    return [max(3, min(80, int(rng.lognormvariate(3.2, 0.4)))) for _ in range(n)]


def sampler(lengths, batch, seed=0, epoch=0, pool=10, **kw) -> EpochBatchSampler:
    s = EpochBatchSampler(len(lengths), batch, shuffle=True, seed=seed, batcher=LengthBuckets(tuple(lengths), pool),
                          **kw)
    s.set_epoch(epoch)
    return s


def spread(lengths, batches) -> float:
    """Mean (longest - shortest) within a batch."""
    return sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)


def test_buckets_group_similar_lengths_and_use_every_index_once():
    n, batch = 1003, 32
    lengths = lengths_like_reviews(n)
    batches = list(sampler(lengths, batch, seed=7))
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert len(batches) == -(-n // batch) and sorted(len(b) for b in batches)[1:] == [batch] * (n // batch)
    plain = list(EpochBatchSampler(n, batch, shuffle=True, seed=7))
    assert spread(lengths, batches) < 0.25 * spread(lengths, plain)
    bucketed, unbucketed = padding_stats(lengths, batches), padding_stats(lengths, plain)
    assert bucketed["efficiency"] > 0.85 > 0.7 > unbucketed["efficiency"]
    assert padding_stats(lengths, plain, pad_to=128)["efficiency"] < 0.25
    # batch lengths are shuffled, not sorted from short to long
    means = [sum(lengths[i] for i in b) / len(b) for b in batches]
    assert means != sorted(means) and means != sorted(means, reverse=True)


def test_batches_are_a_pure_function_of_seed_and_epoch():
    lengths = lengths_like_reviews(500, seed=1)
    torch.manual_seed(123)  # the global RNG plays no part
    first = list(sampler(lengths, 16, seed=0, epoch=3, pool=4))
    torch.manual_seed(999)
    random.seed(5)
    assert list(sampler(lengths, 16, seed=0, epoch=3, pool=4)) == first
    assert list(sampler(lengths, 16, seed=0, epoch=4, pool=4)) != first
    assert list(sampler(lengths, 16, seed=1, epoch=3, pool=4)) != first


def test_resuming_mid_epoch_sees_the_same_remaining_batches():
    lengths = lengths_like_reviews(300, seed=2)
    full = list(sampler(lengths, 16, seed=5, epoch=2))
    resumed = sampler(lengths, 16, seed=5, epoch=2)
    resumed.set_start(7)
    assert list(resumed) == full[7:]


def test_ddp_ranks_get_equally_many_bucketed_batches():
    lengths = lengths_like_reviews(301, seed=3)
    ranks = [list(sampler(lengths, 8, seed=1, rank=r, world_size=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == -(-151 // 8)
    assert spread(lengths, ranks[0]) < 0.5 * spread(lengths, list(EpochBatchSampler(301, 8, shuffle=True, seed=1)))


def test_one_pool_sorts_the_whole_epoch():
    lengths = [5, 1, 4, 2, 3, 6]
    batches = bucket_batches([0, 1, 2, 3, 4, 5], lengths, 2, torch.Generator().manual_seed(0), pool_batches=100)
    assert sorted(tuple(sorted(lengths[i] for i in b)) for b in batches) == [(1, 2), (3, 4), (5, 6)]
    assert consecutive_batches([0, 1, 2], 2) == [[0, 1], [2]]
