"""ft lr-find: the learning-rate range test on the toy recipe. The curve
falls then climbs, the suggestion sits in the fall, the files parse, the
trainer is left bit-identical (a fit after the test equals one without),
the freeze strategies' multipliers hold during the test, and bad options
are clear errors."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import ft
import ft.lr_find
from ft.lr_find import LrCurve, build_trainer, longest_valley, range_test, suggest

from toy_plugin import toy_recipe, write_recipe

FT = [sys.executable, "-m", "ft.cli"]

#: SGD with momentum: on the toy blobs its loss falls, bottoms out near lr 0.3 and blows up before lr 10
DIVERGES = {"optim": {"name": "sgd", "lr": 1e-2, "schedule": "constant"}}


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_equal_states(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_curve_falls_then_diverges_and_the_suggestion_lies_in_the_fall(registry, make_recipe, tmp_path, capsys):
    result = ft.lr_find.lr_find(make_recipe(**DIVERGES), steps=100, out=tmp_path / "lrf")
    curve = result.curve
    assert curve.stopped == "diverged" and 20 < len(curve.lrs) < 100
    smoothed = np.asarray(curve.smoothed)
    low = int(np.argmin(smoothed))
    assert 10 < low < len(smoothed) - 1  # fell to a minimum inside the range ...
    assert smoothed[low] < 0.7 * smoothed[0] and smoothed[-1] > 4 * smoothed[low]  # ... then climbed past 4x it
    # the rates grow exponentially from 1e-7 towards 10, as ft run's optim.lr
    assert curve.lrs[0] == pytest.approx(1e-7) and curve.lrs[-1] < 10
    ratios = np.diff(np.log(curve.lrs))
    assert np.allclose(ratios, math.log(1e8) / 99)
    # the suggestion: inside the range, in the fall (below the minimum's rate, far below the divergence)
    s = result.suggestions
    assert result.suggested_lr == s.valley
    assert curve.lrs[0] < s.valley < curve.lrs[low] < curve.lrs[-1]
    assert s.minimum == pytest.approx(curve.lrs[low] / 10)
    assert curve.lrs[0] < s.steep < curve.lrs[-1]
    assert result.recipe_lr == 1e-2 and result.command is None  # a dict recipe has no ft run line

    out = tmp_path / "lrf"
    rows = list(csv.DictReader((out / "lr_find.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, len(curve.lrs) + 1))
    assert float(rows[-1]["lr"]) == pytest.approx(curve.lrs[-1], rel=1e-6)
    assert float(rows[5]["smoothed"]) == pytest.approx(curve.smoothed[5], rel=1e-5)
    facts = json.loads((out / "lr_find.json").read_text())
    assert facts["suggested_lr"] == pytest.approx(s.valley) and facts["recipe_lr"] == 1e-2
    assert facts["steps_run"] == len(curve.lrs) and facts["steps_planned"] == 100
    assert facts["stopped"] == "diverged" and "4x" in facts["stopped_why"]
    assert set(facts["suggestions"]) == {"valley", "steep", "minimum_div_10"}
    assert (out / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert f"suggested optim.lr {s.valley:.1e}" in printed and "the recipe's optim.lr is 0.01" in printed


@pytest.mark.parametrize("sections", [
    {"train": {"clip_grad_norm": 1.0, "ema_decay": 0.9}, "data": {"augment_noise": 0.3},
     "head": {"dropout": 0.3}, "optim": {"schedule": "cosine", "warmup_steps": 4}},
    {"freeze": {"strategy": "gradual_unfreeze"}},
    # one step per epoch: the step after the test's start already unfreezes a group (and, uncached, the
    # trainer must give it fresh optimizer state then, as without the test)
    {"freeze": {"strategy": "gradual_unfreeze"}, "train": {"batch_size": 240, "epochs": 3, "clip_grad_norm": 1.0},
     "data": {"augment_noise": 0.1}},
], ids=["full-clip-ema-dropout", "gradual_unfreeze", "gradual_unfreeze-one-step-per-epoch"])
def test_training_after_the_test_is_bit_identical(registry, make_recipe, sections):
    sections = {**sections, "train": {"epochs": 2, **sections.get("train", {})}}
    recipe = ft.load_recipe(make_recipe(**sections))
    plain = build_trainer(recipe, registry)
    expected = plain.fit()

    tested = build_trainer(recipe, registry)
    tested.setup()
    before = _state(tested.model)
    curve = range_test(tested, steps=40, start_lr=1e-4, end_lr=1.0)
    assert len(curve.lrs) > 10
    _assert_equal_states(_state(tested.model), before)
    assert tested.step == 0
    got = tested.fit()

    _assert_equal_states(_state(tested.model), _state(plain.model))
    assert [h["train_loss"] for h in got.history] == [h["train_loss"] for h in expected.history]
    assert [h["val_loss"] for h in got.history] == [h["val_loss"] for h in expected.history]


def test_lr_find_leaves_the_recipes_model_as_built(registry, make_recipe, tmp_path):
    """The test's steps move the weights; they are put back afterwards."""
    recipe = ft.load_recipe(make_recipe(**DIVERGES))
    trainer = build_trainer(recipe, registry)
    trainer.setup()
    before = _state(trainer.model)
    moved, on_step = _watch(trainer, before)
    range_test(trainer, steps=30, end_lr=1.0, on_step=on_step)
    assert any(name.startswith("head.") for name in moved) and any(name.startswith("backbone.") for name in moved)
    _assert_equal_states(_state(trainer.model), before)


def _watch(trainer, before, buffers=False):
    """on_step: which parameters (and buffers: BatchNorm statistics) moved during the test, by name."""
    moved: set[str] = set()

    def on_step(step, lr, loss):
        named = trainer.model.state_dict() if buffers else dict(trainer.model.named_parameters())
        moved.update(name for name, t in named.items() if not torch.equal(t.detach(), before[name]))
    return moved, on_step


@pytest.mark.parametrize("strategy", ["gradual_unfreeze", "lp_ft"])
def test_groups_frozen_at_the_start_stay_frozen_during_the_test(registry, make_recipe, strategy):
    recipe = ft.load_recipe(make_recipe(freeze={"strategy": strategy}, optim={"head_lr_mult": 3.0},
                                        train={"batch_size": 60}))  # 4 steps per epoch: the test spans epochs
    trainer = build_trainer(recipe, registry)
    trainer.setup()
    before = _state(trainer.model)
    moved, on_step = _watch(trainer, before, buffers=True)
    curve = range_test(trainer, steps=20, start_lr=1e-3, end_lr=1.0, on_step=on_step)
    assert curve.multipliers == {"embed": 0.0, "block1": 0.0, "block2": 0.0, "head": 3.0}
    # the backbone never moved, not even its BatchNorm statistics (kept in eval mode as in epoch 0)
    assert moved and all(name.startswith("head.") for name in moved)
    _assert_equal_states(_state(trainer.model), before)


def test_lora_trains_its_adapters_during_the_test_and_leaves_them_as_they_were(registry, make_recipe):
    recipe = ft.load_recipe(make_recipe(freeze={"strategy": "lora", "r": 2}, optim={"head_lr_mult": 2.0}))
    trainer = build_trainer(recipe, registry)
    trainer.setup()
    before = _state(trainer.model)
    moved, on_step = _watch(trainer, before)
    curve = range_test(trainer, steps=20, start_lr=1e-3, end_lr=1.0, on_step=on_step)
    assert curve.multipliers["head"] == 2.0 and all(f == 1.0 for g, f in curve.multipliers.items() if g != "head")
    assert any(".lora_" in name for name in moved) and any(name.startswith("head.") for name in moved)
    assert all(".lora_" in name or name.startswith("head.") for name in moved)  # pretrained weights never move
    _assert_equal_states(_state(trainer.model), before)


def test_suggestion_rules_on_a_known_curve():
    # a noisy fall from 1e-6 to 1e-2, then a climb; the first tenth and the last 5 points are left out
    lrs = list(np.logspace(-6, 0, 61))
    x = np.log10(lrs)
    smoothed = list((x + 2) ** 2 + 1 + 0.05 * np.sin(7 * x))
    curve = LrCurve(lrs, smoothed, smoothed, "diverged", 61, {"all": 1.0})
    s = suggest(curve)
    low = int(np.argmin(smoothed))
    first, last = longest_valley(np.asarray(smoothed[6:56]))
    assert s.valley == lrs[6 + first + (last - first) // 2]
    assert lrs[6] <= s.valley < lrs[low] and s.valley_points == last - first + 1
    assert s.minimum == pytest.approx(lrs[low] / 10)
    slopes = np.diff(smoothed[6:56]) / np.diff(np.log(lrs[6:56]))
    assert s.steep == lrs[6 + int(np.argmin(slopes))]


def test_longest_valley_skips_blips():
    assert longest_valley(np.array([5.0, 4.0, 4.5, 3.0, 2.0, 2.5, 1.0, 3.0, 4.0])) == (0, 6)
    assert longest_valley(np.array([1.0, 2.0, 3.0])) == (0, 0)


def test_a_test_that_diverges_at_once_says_how_to_widen_it(registry, make_recipe, tmp_path):
    with pytest.raises(ft.FtError) as info:
        ft.lr_find.lr_find(make_recipe(**DIVERGES), steps=10, start_lr=1.0, end_lr=1e4, out=tmp_path / "o",
                           quiet=True)
    text = str(info.value)
    assert "too soon for a suggestion" in text and "lower --end-lr or raise --steps" in text
    facts = json.loads((tmp_path / "o" / "lr_find.json").read_text())  # the curve is still written
    assert facts["suggested_lr"] is None and facts["stopped"] in ("diverged", "nonfinite")
    assert (tmp_path / "o" / "lr_find.png").exists()


@pytest.mark.parametrize("options, named", [
    ({"steps": 9}, "--steps"),
    ({"start_lr": 1e-2, "end_lr": 1e-3}, "--start-lr"),
    ({"start_lr": 1e-3, "end_lr": 1e-3}, "--end-lr"),
    ({"start_lr": -1.0}, "--start-lr"),
    ({"end_lr": float("inf")}, "--end-lr"),
])
def test_bad_options_are_clear_errors(registry, make_recipe, tmp_path, options, named):
    with pytest.raises(ft.FtError, match=named):
        ft.lr_find.lr_find(make_recipe(), out=tmp_path / "o", quiet=True, **options)
    assert not (tmp_path / "o").exists()  # refused before anything was built or written


def test_refused_under_torchrun(registry, make_recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ft.FtError, match="torchrun") as info:
        ft.lr_find.lr_find(make_recipe(), out=tmp_path / "o", quiet=True)
    assert "train.grad_accum" in str(info.value)


def test_cli_prints_the_run_line_and_writes_the_files(toy_env, tmp_path):
    path = write_recipe(tmp_path / "toy.toml", toy_recipe(tmp_path))
    out = tmp_path / "found"
    done = subprocess.run([*FT, "lr-find", str(path), "--set", "optim.name=sgd", "--steps", "60",
                           "--out", str(out)], capture_output=True, text=True, env=toy_env, timeout=300)
    assert done.returncode == 0, done.stderr
    facts = json.loads((out / "lr_find.json").read_text())
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == f"ft run {path} --set optim.name=sgd --set optim.lr={facts['suggested_lr']:.1e}"
    assert facts["command"] == lines[-1]
    assert "the recipe's optim.lr is 0.01" in done.stdout
    assert len((out / "lr_find.csv").read_text().splitlines()) == facts["steps_run"] + 1
    assert (out / "lr_find.png").stat().st_size > 1000

    bad = subprocess.run([*FT, "lr-find", str(path), "--steps", "5"], capture_output=True, text=True, env=toy_env,
                         timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "--steps must be at least 10" in bad.stderr

