"""The speech recipe's encoder on 2 ranks equals one process with the whole
batch (torchrun, gloo): Resemblyzer fine-tuned on pitch classes, random
crops, gain, noise and SpecAugment off so both see the same inputs. In
float64: in float32 the rounding of two half-batch sums against one whole
batch's depends on the CPU's kernels and, carried through the LSTM and a
few Adam steps, moved the validation loss by 1e-3 relative on a CPU
without AVX2."""

from __future__ import annotations

from ddp_testkit import assert_same_training, run_jobs


def recipe(root, run_dir, batch: int) -> dict:
    return {
        "task": {"type": "classification"},
        "data": {"format": "audio_folder", "path": str(root), "clip_seconds": 1.0, "val_fraction": 0.25,
                 "test_fraction": 0.25, "seed": 0, "augment": False, "random_crop": False},
        "backbone": {"name": "resemblyzer", "pool": "lstm_mean", "layer": 3, "spec_augment": False},
        "head": {"type": "linear"},
        "freeze": {"strategy": "full"},
        "optim": {"lr": 1e-3, "head_lr_mult": 5.0, "schedule": "cosine"},
        "train": {"epochs": 2, "batch_size": batch, "progress": False, "clip_grad_norm": 1.0,
                  "precision": "fp64"},
        "output": {"dir": str(run_dir)},
    }


def test_two_ranks_equal_one_process(tone_folder, tmp_path):
    root = tone_folder(n_per_class=8, seconds=1.0)
    for ranks in (2, 1):
        job = {"name": "speech", "recipe": recipe(root, tmp_path / f"run{ranks}", batch=8 // ranks)}
        run_jobs([job], tmp_path / f"out{ranks}", nproc=ranks)
    # weights agree to 1e-9; metrics to 1e-6 because the logged train_loss is a float32 sum
    assert_same_training(tmp_path / "out2", tmp_path / "out1", "speech", weight_tol=1e-9, metric_tol=1e-6)
