"""A crash while writing a checkpoint never corrupts the last good one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import ft
from ft import checkpoint
from ft.checkpoint import read_checkpoint_dir, save_checkpoint_dir, load_weights


def test_checkpoint_roundtrip_with_weights_only(tmp_path):
    model = nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    save_checkpoint_dir(tmp_path / "c", model, {"optimizer": opt.state_dict(), "rng": torch.get_rng_state()},
                        {"epoch": 1})
    state, meta = read_checkpoint_dir(tmp_path / "c")  # torch.load(weights_only=True) inside
    assert meta == {"epoch": 1}
    other = nn.Linear(3, 2)
    load_weights(other, tmp_path / "c" / "model.safetensors")
    assert torch.equal(other.weight, model.weight)
    opt2 = torch.optim.AdamW(other.parameters())
    opt2.load_state_dict(state["optimizer"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model = nn.Linear(3, 2)
    target = tmp_path / "epoch-1"
    save_checkpoint_dir(target, model, {"x": torch.ones(1)}, {"epoch": 1})
    good = (target / "model.safetensors").read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    with torch.no_grad():
        model.weight.add_(1.0)
    monkeypatch.setattr(checkpoint.torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint_dir(target, model, {"x": torch.ones(1)}, {"epoch": 2})
    assert (target / "model.safetensors").read_bytes() == good
    assert json.loads((target / "state.json").read_text()) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-1"]  # no half-written leftovers


def test_crash_mid_run_resumes_from_last_good_checkpoint(registry, make_recipe, monkeypatch):
    """The writer of epoch 3's checkpoint dies; `latest` still names epoch 2
    and the run resumes from it."""
    recipe = make_recipe(train={"epochs": 4})
    real_save = checkpoint.save_weights
    calls = {"n": 0}

    def flaky(model, path):
        calls["n"] += 1
        if "epoch-3" in str(path.parent.name):
            raise OSError("power cut")
        return real_save(model, path)

    monkeypatch.setattr(checkpoint, "save_weights", flaky)
    with pytest.raises(OSError, match="power cut"):
        ft.run(recipe, quiet=True)
    run_dir = Path(recipe["output"]["dir"])
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    assert latest["checkpoint"] == "epoch-2"
    monkeypatch.setattr(checkpoint, "save_weights", real_save)
    resumed = ft.run(recipe, quiet=True, resume=True)
    assert resumed.summary["epochs_run"] == 4
