"""Whole runs with a tiny random BERT on a synthetic sentiment task: the loss
falls and accuracy clears a bar, LoRA (the freeze plugin's peft adapters)
trains under 5% of the weights, ``ft predict`` prints a label and its
probability, and the Rotten Tomatoes recipe (and its LoRA variant) is valid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ft

from nlp_testkit import sentiment_rows, text_recipe, write_csv

REPO = Path(__file__).resolve().parents[3]
RECIPE = REPO / "recipes" / "sentiment_rotten_tomatoes.toml"


@pytest.fixture
def reviews(tmp_path):
    return write_csv(tmp_path / "reviews.csv", ["review", "sentiment"], sentiment_rows(320, seed=1))


def recipe_for(reviews, tiny_bert, run_dir, **sections):
    data = {"path": str(reviews), "text_column": "review", "label_column": "sentiment", "test_size": 64,
            "val_fraction": 0.1, "seed": 0}
    return text_recipe(data, {"name": "hf_encoder", "weights": str(tiny_bert), "pooling": "mean",
                              "max_length": 32}, run_dir, **sections)


def history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_fine_tuning_learns_and_predict_prints_label_and_probability(registry, reviews, tiny_bert, tmp_path):
    result = ft.run(recipe_for(reviews, tiny_bert, tmp_path / "full"), quiet=True)
    curve = history(result.run_dir)
    assert curve[-1]["train_loss"] < 0.5 * curve[0]["train_loss"]
    assert result.metrics["test"]["accuracy"] >= 0.9
    data = json.loads((result.run_dir / "data.json").read_text())
    assert data["classes"] == ["neg", "pos"] and data["label_map"] == {"neg": 0, "pos": 1}
    assert data["sizes"] == {"train": 224, "val": 32, "test": 64} and data["bucketing"].startswith("on")
    task = json.loads((result.run_dir / "task.json").read_text())
    assert task["class_names"] == ["neg", "pos"]
    groups = [row["group"] for row in result.summary["params"]["groups"]]
    assert groups == ["embeddings", "layer0", "layer1", "head"]

    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    texts = ["a superb and moving film", "the plot was dull and the acting awful"]
    out = subprocess.run([sys.executable, "-m", "ft.cli", "predict", str(result.run_dir), *texts, "--top-k", "1"],
                         capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()[-2:]
    for line, text, label in zip(lines, texts, ("pos", "neg")):
        assert line.startswith(f"{text}: {label} ")
        assert 0.5 < float(line.rsplit(" ", 1)[1]) <= 1.0


def test_lora_trains_under_five_percent_of_the_weights(registry, reviews, tiny_bert, tmp_path):
    recipe = recipe_for(reviews, tiny_bert, tmp_path / "lora",
                        freeze={"strategy": "lora", "r": 2, "alpha": 4, "target_modules": ["query", "value"]},
                        optim={"lr": 3e-2}, train={"epochs": 8})  # small adapters on a random model: a high rate
    result = ft.run(recipe, quiet=True)
    params = result.summary["params"]
    assert params["trainable"] == 2 * 2 * 2 * (64 + 64) + 2 * 64 + 2  # adapters on query/value + head
    assert params["trainable"] / params["total"] < 0.05
    curve = history(result.run_dir)
    assert curve[-1]["train_loss"] < 0.3 * curve[0]["train_loss"]
    assert result.metrics["test"]["accuracy"] >= 0.85
    # the run reloads with its adapters (ft.load_run re-applies the strategy)
    loaded = ft.load_run(result.run_dir)
    assert any("lora_A" in name for name, _ in loaded.model.named_parameters())


@pytest.mark.parametrize("task", ["multilabel", "regression"])
def test_multilabel_and_regression_runs_learn(registry, tiny_bert, tmp_path, task):
    rows = sentiment_rows(160, seed=2)
    if task == "multilabel":  # the sentiment, plus "long" for texts of more than 8 words
        table = [(t, y + ("|long" if len(t.split()) > 8 else "")) for t, y in rows]
    else:  # 1 for positive, 0 for negative, plus a little for length
        table = [(t, f"{(y == 'pos') + len(t.split()) / 20:.3f}") for t, y in rows]
    path = write_csv(tmp_path / f"{task}.csv", ["text", "target"], table)
    data = {"path": str(path), "label_column": "target", "val_fraction": 0.2}
    recipe = text_recipe(data, {"name": "hf_encoder", "weights": str(tiny_bert), "pooling": "mean"},
                         tmp_path / task, task={"type": task}, train={"epochs": 8})
    result = ft.run(recipe, quiet=True)
    curve = history(result.run_dir)
    assert curve[-1]["train_loss"] < 0.5 * curve[0]["train_loss"]
    if task == "multilabel":
        assert result.model.task.class_names == ("long", "neg", "pos")
        assert result.metrics["val"]["micro_f1"] > 0.8
    else:
        values = torch.tensor([float(v) for _, v in table])
        assert result.metrics["val"]["rmse"] < 0.6 * values.std().item()  # well below predicting the mean


def test_the_rotten_tomatoes_recipe_is_valid(registry):
    recipe = ft.load_recipe(RECIPE)
    assert recipe.backbone.name == "minilm" and recipe.data.name == "text_csv"
    assert recipe.data.options.test_size == 1000 and recipe.data.options.labels == ["rotten", "fresh"]
    assert recipe.data.options.bucket and recipe.optim.schedule == "linear" and recipe.optim.warmup_ratio > 0
    lora = ft.load_recipe(RECIPE, ["freeze.strategy=lora", "freeze.r=8", "freeze.alpha=16", "optim.lr=5e-4"])
    assert lora.freeze.name == "lora" and lora.freeze.options.r == 8


def test_a_training_set_smaller_than_validation_and_test_still_runs(registry, reviews, tiny_bert, tmp_path):
    """data.limit below the validation and test sizes (a quick look): the
    length buckets cover the training split only, so evaluation is unaffected."""
    recipe = recipe_for(reviews, tiny_bert, tmp_path / "small", train={"epochs": 1, "batch_size": 8})
    result = ft.run(recipe, overrides={"data.limit": 16}, quiet=True)
    data = json.loads((result.run_dir / "data.json").read_text())
    assert data["sizes"] == {"train": 16, "val": 32, "test": 64}
    assert 0.0 <= result.metrics["test"]["accuracy"] <= 1.0 and "accuracy" in result.metrics["val"]
