"""EfficientNet-Lite0 (ImageNet weights, BatchNorm+activation layers) on 2
ranks with ``train.sync_batchnorm``: BatchNorm normalises with the global
batch's statistics, so running statistics, weights and metrics are those of
one process with the whole batch. Without it each rank normalises its own
half and the running statistics drift (the unsynced run below).

In float64 (``train.precision = "fp64"``): BatchNorm's backward subtracts
nearly equal sums over every pixel of a channel, and in float32 the
rounding of that, carried through a few optimizer steps, moves one
process's own weights as far from float64's as the weights move at all here
(measured: the float32 change differs from float64's by ~70 %, on one
process and on two ranks alike), so float32 could not show what this test
is about. In float64 two ranks end within 1e-9 of one process.
"""

from __future__ import annotations

import torch

from ddp_testkit import assert_close_dicts, history, outcome, run_jobs, weights


def recipe(root, run_dir, batch: int, sync: bool) -> dict:
    return {
        "task": {"type": "classification"},
        "data": {"format": "image_folder", "path": str(root), "val_fraction": 0.2, "seed": 1, "augment": False},
        "backbone": {"name": "efficientnet_lite0", "image_size": 32, "drop_path_rate": 0.0},
        "head": {"type": "linear"},
        "freeze": {"strategy": "full"},
        # SGD: a BatchNorm bias whose output only feeds another BatchNorm (bn3 of each block) has a
        # gradient that is zero up to rounding, which Adam would scale up to full-size, run-specific steps
        "optim": {"name": "sgd", "lr": 0.01, "schedule": "cosine"},
        "train": {"epochs": 2, "batch_size": batch, "progress": False, "sync_batchnorm": sync, "precision": "fp64"},
        "output": {"dir": str(run_dir)},
    }


def test_two_ranks_with_sync_batchnorm_equal_one_process(shapes_folder, tmp_path):
    root = shapes_folder(n_per_class=10, size=32)  # 24 training images: 3 steps of 8
    runs = {"synced": (2, True), "unsynced": (2, False), "single": (1, False)}
    for name, (ranks, sync) in runs.items():
        job = {"name": "vision", "recipe": recipe(root, tmp_path / name, 8 // ranks, sync)}
        run_jobs([job], tmp_path / f"out-{name}", nproc=ranks)
    single, synced = history(tmp_path / "single"), history(tmp_path / "synced")
    for a, b in zip(synced, single):  # the figures themselves are summed in float32
        assert_close_dicts(a, b, 1e-6, 1e-9, f"epoch {b['epoch']}")
    assert outcome(tmp_path / "out-synced", "vision")["metrics"]["val"]["accuracy"] == \
        outcome(tmp_path / "out-single", "vision")["metrics"]["val"]["accuracy"]

    one, sync, nosync = (weights(tmp_path / f"out-{name}", "vision") for name in ("single", "synced", "unsynced"))
    for key in one:
        torch.testing.assert_close(sync[key], one[key], rtol=1e-9, atol=1e-9, msg=lambda m: f"{key}: {m}")
    # the statistics are what sync_batchnorm is for: without it they are far off
    stats = [k for k in one if k.endswith(("running_mean", "running_var"))]
    synced_gap = max(((sync[k] - one[k]).abs() / (one[k].abs() + 1)).max().item() for k in stats)
    unsynced_gap = max(((nosync[k] - one[k]).abs() / (one[k].abs() + 1)).max().item() for k in stats)
    assert synced_gap < 1e-9 and unsynced_gap > 1e-3, (synced_gap, unsynced_gap)
