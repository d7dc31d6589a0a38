"""ft.run on a tiny test-generated audio_folder (tones by pitch), then ft predict."""

from __future__ import annotations

import json

import pytest

import ft
from ft.cli import main as ft_main

from speech_testkit import tone, write


def recipe(root, out, **over):
    r = {
        "task": {"type": "classification"},
        "data": {"format": "audio_folder", "path": str(root), "clip_seconds": 0.5, "val_fraction": 0.2,
                 "test_fraction": 0.2, "seed": 0},
        "backbone": {"name": "logmel_cnn", "channels": [8, 16, 32, 32]},
        "head": {"type": "linear"},
        "freeze": {"strategy": "full"},
        "optim": {"lr": 1e-2, "schedule": "constant"},
        "train": {"epochs": 10, "batch_size": 8, "progress": False, "seed": 0},
        "output": {"dir": str(out)},
    }
    for section, values in over.items():
        r[section].update(values)
    return r


def test_logmel_cnn_learns_pitch_classes_and_predicts(registry, tone_folder, tmp_path, capsys):
    root = tone_folder(n_per_class=10, seconds=0.6, rate=8000)
    result = ft.run(recipe(root, tmp_path / "run"), quiet=True)
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [h["train_loss"] for h in history]
    assert losses[-1] < 0.5 * losses[0]
    assert result.metrics["test"]["accuracy"] >= 0.8
    data = json.loads((tmp_path / "run" / "data.json").read_text())
    assert data["classes"] == ["high", "low", "mid"] and data["cache"]["enabled"]

    clip = write(tmp_path / "query.flac", tone(800, 0.7, 22050, seed=99), 22050)
    capsys.readouterr()
    assert ft_main(["predict", str(tmp_path / "run"), str(clip), "--top-k", "2"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"{clip}: high ")
    label, prob = line.split(": ", 1)[1].split(", ")[0].split()
    assert label == "high" and 0.5 < float(prob) <= 1.0


def test_resemblyzer_linear_probe_runs_end_to_end(registry, tone_folder, tmp_path):
    root = tone_folder(n_per_class=6, seconds=1.0)
    r = recipe(root, tmp_path / "probe", backbone={"name": "resemblyzer"},
               freeze={"strategy": "linear_probe"}, optim={"lr": 1e-2},
               train={"epochs": 4, "batch_size": 6},
               data={"clip_seconds": 1.6, "augment": False, "random_crop": False})
    r["backbone"] = {"name": "resemblyzer"}
    result = ft.run(r, quiet=True)
    assert result.summary["settings"].get("feature_cache", "on").startswith("on")
    assert result.metrics["test"]["accuracy"] >= 2 / 3


def test_bad_file_stops_the_run_before_training(registry, tone_folder, tmp_path):
    root = tone_folder(n_per_class=3, seconds=0.5)
    (root / "low" / "zz_broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(ft.DataError, match="zz_broken.wav"):
        ft.run(recipe(root, tmp_path / "bad"), quiet=True)
    assert not (tmp_path / "bad" / "metrics.jsonl").exists()
    result = ft.run(recipe(root, tmp_path / "skip", data={"skip_bad": True}, train={"epochs": 1}), quiet=True)
    data = json.loads((tmp_path / "skip" / "data.json").read_text())
    assert data["skipped"] == {"unreadable": 1} and result.summary["data"]["train"] >= 1
