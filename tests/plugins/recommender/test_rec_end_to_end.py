"""ft.run for each backbone on small synthetic data; reload, eval and predict."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import default_collate

import ft
from ft.cli import main as ft_main

from rec_testkit import rec_recipe, synthetic, train_losses, write_atomic, write_csv, write_udata

BACKBONES = {
    "mf": {"name": "mf"},
    "two_tower": {"name": "two_tower", "hidden": 32, "history": 8},
    "sasrec": {"name": "sasrec", "max_history": 8, "layers": 1, "heads": 2, "dropout": 0.0},
}


@pytest.fixture
def inter(tmp_path):
    return write_atomic(tmp_path / "toy", synthetic(n_users=36, n_items=30, per_user=10))


@pytest.mark.parametrize("name", list(BACKBONES))
def test_run_reload_eval_predict(name, inter, tmp_path, registry, capsys):
    recipe = rec_recipe(tmp_path, inter, BACKBONES[name], train={"epochs": 5})
    result = ft.run(recipe, quiet=True)
    losses = train_losses(result.run_dir)
    assert losses[-1] < 0.8 * losses[0], losses
    test = result.metrics["test"]
    assert set(test) == {"loss", "ndcg@10", "recall@10", "hit@10"} and 0 <= test["ndcg@10"] <= 1
    assert result.summary["best_epoch"] is not None and result.summary["monitor"] == "val_ndcg@10"

    # ft.load_run: bind_data from data.json, equal outputs on a test batch
    loaded = ft.load_run(result.run_dir)
    bundle = ft.engine.build_data(loaded.recipe, loaded.model.backbone)
    inputs, targets = default_collate([bundle.test[i] for i in range(8)])
    result.model.eval()
    with torch.no_grad():
        assert torch.equal(loaded.model(inputs), result.model(inputs))

    # ft eval on the run directory gives the engine's final test metrics
    capsys.readouterr()
    assert ft_main(["eval", str(result.run_dir), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated == pytest.approx(test, rel=1e-5)

    # ft predict RUN USER prints that user's top items, none of them already known
    assert ft_main(["predict", str(result.run_dir), "u3", "--top-k", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    top = [row["label"] for row in out[0]["top"]]
    known = {r[1] for r in synthetic(n_users=36, n_items=30, per_user=10) if r[0] == "u3"}
    assert out[0]["input"] == "u3" and len(top) == 4 and all(x.startswith("i") for x in top)
    assert not set(top) & (known - set(_held_out(inter, "u3")))


def _held_out(inter, user):
    """The user's last two items (leave-last-out val + test), which predict may recommend."""
    rows = [line.split("\t") for line in inter.read_text().splitlines()[1:]]
    mine = sorted((float(r[3]), r[1]) for r in rows if r[0] == user)
    return [item for _, item in mine[-2:]]


def test_predict_prints_top_items_and_rejects_unknown_users(inter, tmp_path, registry, capsys):
    result = ft.run(rec_recipe(tmp_path, inter, BACKBONES["mf"], train={"epochs": 1}), quiet=True)
    capsys.readouterr()
    assert ft_main(["predict", str(result.run_dir), "u5", "--top-k", "3"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("u5: i") and line.count(", ") == 2
    assert ft_main(["predict", str(result.run_dir), "nobody"]) == 2
    assert "user 'nobody'" in capsys.readouterr().err
    # the training split evaluates too: each interaction's item is its one relevant item
    assert ft_main(["eval", str(result.run_dir), "--split", "train", "--json"]) == 0
    train = json.loads(capsys.readouterr().out)
    assert 0 < train["hit@10"] <= 1 and set(train) == {"loss", "ndcg@10", "recall@10", "hit@10"}


@pytest.mark.parametrize("fmt", ["interactions_csv", "grouplens"])
def test_rating_regression_with_mf(fmt, tmp_path, registry, capsys):
    rows = synthetic(n_users=30, n_items=24, per_user=10)
    rows = [(u, i, float(1 + (int(u[1:]) + int(i[1:])) % 5), t) for u, i, _, t in rows]  # learnable ratings
    path = write_csv(tmp_path / "r.csv", rows) if fmt == "interactions_csv" else write_udata(tmp_path / "u.data", rows)
    recipe = rec_recipe(tmp_path, path, {"name": "mf"}, task={"type": "rating"}, head={"type": "rating"},
                        train={"epochs": 6})
    recipe["data"] = {"format": fmt, "path": str(path), "split": "by_time", "cutoff": 0.8, "val_cutoff": 0.7}
    result = ft.run(recipe, quiet=True)
    losses = train_losses(result.run_dir)
    assert losses[-1] < 0.7 * losses[0], losses
    assert set(result.metrics["test"]) == {"loss", "mae", "rmse"}
    capsys.readouterr()
    assert ft_main(["predict", str(result.run_dir), "u3:i4"]) == 0
    assert capsys.readouterr().out.startswith("u3:i4: rating ")
