"""Whole runs on a generated image folder: training learns, frozen features
are cached, ``ft predict`` answers with class probabilities, and the
Fashion-MNIST recipe is valid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


import ft

from vision_testkit import needs_fashion_mnist

REPO = Path(__file__).resolve().parents[3]


def shapes_recipe(root: Path, run_dir: Path, **sections) -> dict:
    recipe = {
        "task": {"type": "classification"},
        "data": {"format": "image_folder", "path": str(root), "val_fraction": 0.25, "seed": 1},
        "head": {"type": "linear"},
        "optim": {"lr": 3e-3, "schedule": "cosine"},
        "train": {"epochs": 4, "batch_size": 8, "progress": False, "checkpoint": False},
        "output": {"dir": str(run_dir)},
    }
    for name, values in sections.items():
        recipe.setdefault(name, {}).update(values)
    return recipe


def test_from_scratch_run_learns(registry, shapes_folder, tmp_path):
    root = shapes_folder(n_per_class=8, size=32)
    recipe = shapes_recipe(root, tmp_path / "scratch",
                           backbone={"name": "timm", "model": "test_convnext", "weights": "random", "image_size": 32},
                           data={"random_resized_crop": False}, train={"epochs": 5, "channels_last": True})
    result = ft.run(recipe, quiet=True)
    history = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert history[-1]["train_loss"] < 0.6 * history[0]["train_loss"]
    assert result.metrics["val"]["accuracy"] >= 0.8
    assert result.summary["settings"]["channels_last"] is True
    data = json.loads((result.run_dir / "data.json").read_text())
    assert data["classes"] == ["circle", "square", "triangle"] and data["train_augmented"] is True


def test_linear_probe_caches_features_and_predict_prints_probabilities(registry, shapes_folder, tmp_path):
    root = shapes_folder(n_per_class=6, size=40)
    recipe = shapes_recipe(root, tmp_path / "probe", backbone={"name": "efficientnet_lite0", "image_size": 64},
                           data={"augment": False}, freeze={"strategy": "linear_probe"},
                           optim={"lr": 0.05}, train={"epochs": 8, "batch_size": 6})
    result = ft.run(recipe, quiet=True)
    assert result.summary["settings"]["feature_cache"] == "on while the backbone is frozen"
    assert result.metrics["val"]["accuracy"] == 1.0
    trainable = {row["group"]: row["trainable"] for row in result.summary["params"]["groups"]}
    assert trainable["head"] == 1280 * 3 + 3 and trainable["stem"] == 0

    image = root / "triangle" / "triangle_005.jpg"
    env = dict(os.environ, OMP_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-m", "ft.cli", "predict", str(result.run_dir), str(image), "--top-k", "2"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith(f"{image}: triangle ")
    probabilities = [float(part.split()[-1]) for part in line.split(": ", 1)[1].split(", ")]
    assert len(probabilities) == 2 and probabilities[0] > 0.5 and probabilities[0] >= probabilities[1]


@needs_fashion_mnist
def test_fashion_mnist_recipe_is_valid(registry):
    recipe = ft.load_recipe(REPO / "recipes" / "fashion_mnist.toml")
    assert recipe.backbone.name == "efficientnet_lite0" and recipe.data.name == "idx"
    assert recipe.train.channels_last is True
    again = ft.load_recipe(recipe.to_dict())  # a run's resolved recipe (every option written out) reloads
    assert again.data.options == recipe.data.options and again.backbone.options == recipe.backbone.options
    probe = ft.load_recipe(REPO / "recipes" / "fashion_mnist.toml",
                           {"freeze.strategy": "linear_probe", "data.augment": False})
    assert probe.freeze.name == "linear_probe"
