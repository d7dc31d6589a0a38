"""Resumable, seeded batching and the data format's batcher hook."""

from __future__ import annotations

import torch

import ft
from ft.data import EpochBatchSampler, consecutive_batches


def by_parity(order, batch_size, generator):
    """A toy 'bucketing' batcher: even and odd indices never share a batch,
    and the batches are shuffled with the epoch's generator."""
    batches = []
    for parity in (0, 1):
        items = [i for i in order if i % 2 == parity]
        batches += consecutive_batches(items, batch_size)
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in perm]


def test_batches_are_a_pure_function_of_seed_and_epoch():
    a = EpochBatchSampler(50, 8, shuffle=True, seed=3, batcher=by_parity)
    b = EpochBatchSampler(50, 8, shuffle=True, seed=3, batcher=by_parity)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)
    assert all(len({i % 2 for i in batch}) == 1 for batch in a)
    assert sorted(i for batch in a for i in batch) == list(range(50))


def test_set_start_skips_batches_once():
    s = EpochBatchSampler(40, 8, shuffle=True, seed=0)
    full = list(s)
    s.set_start(2)
    assert len(s) == 3 and list(s) == full[2:]
    assert list(s) == full  # only once


def test_ranks_split_a_large_batch():
    single = list(EpochBatchSampler(64, 16, shuffle=True, seed=1))
    ranks = [list(EpochBatchSampler(64, 8, shuffle=True, seed=1, rank=r, world_size=2)) for r in (0, 1)]
    for step, batch in enumerate(single):
        assert sorted(batch) == sorted(ranks[0][step] + ranks[1][step])


def test_trainer_uses_the_data_batcher_and_resumes_mid_epoch(registry, make_recipe, tmp_path):
    import toy_plugin

    original = toy_plugin.build_blobs

    def with_batcher(o, backbone, ctx):
        bundle = original(o, backbone, ctx)
        bundle.batcher = by_parity
        return bundle

    spec = registry.entries["ft_dataset_formats"]["toy_blobs"].spec
    registry.entries["ft_dataset_formats"]["toy_blobs"].spec = type(spec)(
        spec.name, with_batcher, spec.options, spec.read_input, spec.tasks)
    sections = dict(data={"augment_noise": 0.2}, train={"epochs": 2})
    unbroken = ft.run(make_recipe(**sections, output={"dir": str(tmp_path / "a")}), quiet=True)
    assert unbroken.summary["steps"] == 2 * 16  # 120 even + 120 odd examples in batches of 16: 8 + 8 per epoch

    recipe = make_recipe(data={"augment_noise": 0.2}, train={"epochs": 2, "time_limit": 1e-9},
                         output={"dir": str(tmp_path / "b")})
    ft.run(recipe, quiet=True)
    ft.run(recipe, overrides={"train.time_limit": 3600}, quiet=True, resume=True)
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "a" / "checkpoints" / "epoch-2" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoints" / "epoch-2" / "model.safetensors"))
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_the_data_batcher_groups_training_batches_only():
    """A format's batcher is built over the training split (its indices, its
    lengths); validation, even when larger than training, keeps dataset
    order in consecutive batches."""
    from types import SimpleNamespace

    from torch.utils.data import TensorDataset

    seen: list[list[int]] = []

    def training_only(order, batch_size, generator):
        assert max(order) < 8, "the batcher got indices of another split"
        seen.append(sorted(order))
        return consecutive_batches(order, batch_size)

    torch.manual_seed(0)
    train = TensorDataset(torch.randn(8, 3), torch.randn(8, 1))
    val = TensorDataset(torch.randn(20, 3), torch.randn(20, 1))
    trainer = ft.Trainer(torch.nn.Linear(3, 1), train, val, loss_fn=torch.nn.functional.mse_loss,
                         data=SimpleNamespace(batcher=training_only), train={"epochs": 2, "batch_size": 4,
                                                                             "progress": False}, quiet=True)
    fit = trainer.fit()
    assert seen and all(order == list(range(8)) for order in seen)
    assert [b for b in trainer.val_loader.batch_sampler] == [list(range(i, i + 4)) for i in range(0, 20, 4)]
    assert len(fit.history) == 2 and "val_loss" in fit.history[-1]
