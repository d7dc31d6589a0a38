"""``ft compare``: one table of runs (the recipe keys that differ, best epoch,
final metrics, time, trainable weights) and one plot of their curves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import ft
from ft import _registry
from ft.cli import main as ft_main
from ft.compare import compare, differing_keys, expand

import toy_plugin


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[float, Path]:
    """Two finished toy runs that differ in optim.lr only."""
    tmp = tmp_path_factory.mktemp("runs")
    _registry.reset_registry()
    _registry.get_registry().register(toy_plugin, "toy")
    try:
        return {lr: ft.run(toy_plugin.toy_recipe(tmp, optim={"lr": lr}, train={"epochs": 2},
                                                 output={"dir": str(tmp / f"lr-{lr}")}), quiet=True).run_dir
                for lr in (0.01, 0.001)}
    finally:
        _registry.reset_registry()


def test_the_table_shows_the_keys_that_differ_and_the_final_figures(runs, tmp_path, capsys):
    plot = tmp_path / "cmp.png"
    result = compare([runs[0.01], runs[0.001]], out=plot)
    assert result["keys"] == ["optim.lr"]  # not output.dir, not the keys both recipes share
    for run, lr in zip(result["runs"], (0.01, 0.001)):
        summary = json.loads((runs[lr] / "summary.json").read_text())
        assert run["recipe"] == {"optim.lr": lr} and run["status"] == "finished"
        assert run["metrics"] == summary["metrics"] and run["best_epoch"] == summary["best_epoch"]
        assert run["train_seconds"] == summary["train_seconds"]
        assert run["trainable"] == summary["params"]["trainable"] == 2019
    assert plot.stat().st_size > 1000 and result["plot"] == str(plot)
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "optim.lr" in line)
    for column in ("run", "optim.lr", "status", "best epoch", "val accuracy", "test accuracy", "train time",
                   "trainable"):
        assert column in header, column
    assert "train.epochs" not in out and "output.dir" not in out
    assert "0.001" in out and "2,019" in out and f"{result['runs'][1]['metrics']['test']['accuracy']:.4f}" in out


def test_json_prints_what_compare_returns(runs, tmp_path, capsys):
    assert ft_main(["compare", str(runs[0.01]), str(runs[0.001]), "--json", "--out", str(tmp_path / "c.png")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["keys"] == ["optim.lr"] and [r["recipe"]["optim.lr"] for r in printed["runs"]] == [0.01, 0.001]
    assert (tmp_path / "c.png").exists()


def test_a_sweep_folder_stands_for_its_trials(runs, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for i, lr in ((2, 0.01), (10, 0.001)):
        shutil.copytree(runs[lr], sweep / "trials" / str(i))
    (sweep / "study.db").write_text("")
    found = expand([sweep, runs[0.01]])
    assert found == [sweep / "trials" / "2", sweep / "trials" / "10", runs[0.01]]
    result = compare([sweep], out=tmp_path / "c.png", as_json=True)
    assert [r["recipe"]["optim.lr"] for r in result["runs"]] == [0.01, 0.001]
    assert expand([runs[0.01], runs[0.01]]) == [runs[0.01]]  # a run given twice is one row


def test_an_unfinished_run_shows_its_last_epoch(runs, tmp_path):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(runs[0.001], unfinished)
    (unfinished / "summary.json").unlink()
    last = json.loads((unfinished / "metrics.jsonl").read_text().splitlines()[-1])
    result = compare([runs[0.01], unfinished], out=tmp_path / "c.png", as_json=True)
    row = result["runs"][1]
    assert row["status"] == "unfinished" and row["best_epoch"] is None and row["trainable"] is None
    assert row["metrics"] == {"val": {k[4:]: v for k, v in last.items() if k.startswith("val_")}}
    assert row["train_seconds"] == last["elapsed"]


def test_differing_keys_count_a_key_set_in_one_recipe_only():
    recipes = [{"optim.lr": 0.1, "freeze.strategy": "full", "output.dir": "a"},
               {"optim.lr": 0.1, "freeze.strategy": "lora", "freeze.r": 8, "output.dir": "b"}]
    assert differing_keys(recipes) == ["freeze.strategy", "freeze.r"]


@pytest.mark.parametrize("bad", ["missing", "file", "empty"])
def test_what_is_not_a_run_is_an_error_naming_it(runs, tmp_path, capsys, bad):
    path = tmp_path / bad
    if bad == "file":
        path.write_text("x")
    elif bad == "empty":
        (path / "logs").mkdir(parents=True)
    assert ft_main(["compare", str(runs[0.01]), str(path), "--out", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert f"ft: error: {path}: " in err and "hint:" in err
    assert not (tmp_path / "c.png").exists()


def test_a_plot_path_matplotlib_cannot_write_is_an_error(runs, tmp_path, capsys):
    assert ft_main(["compare", str(runs[0.01]), "--out", str(tmp_path / "c.nosuchformat")]) == 2
    err = capsys.readouterr().err
    assert "cannot write the curves plot" in err and ".png" in err
