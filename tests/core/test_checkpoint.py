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


# -- damaged files read back: one clear error naming the file ---------------------------


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "junk":
        path.write_bytes(b"\xff" * 64)  # safetensors: "header too large"; torch: not a zip, not a pickle
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "missing":
        path.unlink()


@pytest.mark.parametrize("how", ["truncated", "junk", "empty", "missing"])
def test_damaged_checkpoint_files_are_named(tmp_path, how):
    root = tmp_path / "checkpoints"
    model = nn.Linear(3, 2)
    for name in ("epoch-1", "epoch-2"):
        save_checkpoint_dir(root / name, model, {"x": torch.ones(2)}, {"epoch": 1})
    for name in ("state.pt", "model.safetensors"):
        _damage(root / "epoch-2" / name, how)
    with pytest.raises(ft.FtError) as err:
        read_checkpoint_dir(root / "epoch-2")
    text = str(err.value)
    assert str(root / "epoch-2" / "state.pt") in text and "the checkpoint's training state" in text
    assert ("does not exist" if how == "missing" else "damaged or is not a torch.save file") in text
    assert 'use an earlier checkpoint: write {"checkpoint": "epoch-1"}' in text
    with pytest.raises(ft.FtError) as err:
        load_weights(nn.Linear(3, 2), root / "epoch-2" / "model.safetensors")
    assert str(root / "epoch-2" / "model.safetensors") in str(err.value)
    assert ("does not exist" if how == "missing" else "damaged or is not a safetensors file") in str(err.value)
    with pytest.raises(ft.FtError, match="epoch-2.model.safetensors: cannot read the model weights"):
        checkpoint.read_weights(root / "epoch-2" / "model.safetensors")
    # the earlier checkpoint the hint points at is whole
    assert read_checkpoint_dir(root / "epoch-1")[1] == {"epoch": 1}


def test_read_helpers_for_plugins(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(3)}, tmp_path / "w.safetensors")
    torch.save({"w": torch.ones(3)}, tmp_path / "w.pt")
    assert torch.equal(checkpoint.read_safetensors(tmp_path / "w.safetensors")["w"], torch.ones(3))
    assert torch.equal(checkpoint.read_state(tmp_path / "w.pt")["w"], torch.ones(3))
    (tmp_path / "w.pt").write_bytes(b"\x80\x02c__builtin__\nprint\nq\x00.")  # a pickle of a function
    with pytest.raises(ft.FtError) as err:
        checkpoint.read_state(tmp_path / "w.pt", "the backbone weights", hint="download it again")
    text = str(err.value)
    assert text.startswith(f"{tmp_path / 'w.pt'}: cannot read the backbone weights: the file is damaged")
    assert "UnpicklingError" in text and "weights_only=False" not in text and "download it again" in text
    with pytest.raises(ft.FtError, match="this is a folder, not a file"):
        checkpoint.read_safetensors(tmp_path)


def test_garbled_latest_pointer_is_a_clear_error(tmp_path):
    root = tmp_path / "checkpoints"
    save_checkpoint_dir(root / "epoch-1", nn.Linear(3, 2), {}, {"epoch": 1})
    pointer = root / "latest.json"
    for text, expected in [('{"checkpoint": "epo', "damaged (not JSON"), ("[1, 2]", "names no checkpoint folder"),
                           ('{"checkpoint": "../x"}', "names no checkpoint folder"),
                           (b"\xff\xfe{", "damaged (not JSON")]:
        pointer.write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(ft.FtError) as err:
            checkpoint.latest_checkpoint(tmp_path)
        assert str(pointer) in str(err.value) and expected in str(err.value)
        assert 'write {"checkpoint": "epoch-1"} into it' in str(err.value)
    pointer.write_text('{"checkpoint": "epoch-1"}')
    assert checkpoint.latest_checkpoint(tmp_path) == root / "epoch-1"


def test_weights_that_do_not_fit_the_model(tmp_path):
    checkpoint.save_weights(nn.Linear(3, 2), tmp_path / "m.safetensors")
    with pytest.raises(ft.FtError, match="do not fit the model: size mismatch for weight"):
        load_weights(nn.Linear(4, 2), tmp_path / "m.safetensors")
