"""Shared fixtures: the toy plugin registered in-process, and toy recipes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def registry(monkeypatch):
    """A fresh plugin registry (entry points + the toy plugin)."""
    import ft
    from ft import _registry

    import toy_plugin

    _registry.reset_registry()
    reg = _registry.get_registry()
    reg.register(toy_plugin, "toy")
    yield reg
    _registry.reset_registry()


def toy_recipe(tmp_path: Path, **sections) -> dict:
    """A small, fast classification recipe on toy blobs."""
    recipe = {
        "task": {"type": "classification"},
        "data": {"format": "toy_blobs"},
        "backbone": {"name": "toy_mlp"},
        "head": {"type": "linear"},
        "freeze": {"strategy": "full"},
        "optim": {"lr": 1e-2, "schedule": "constant"},
        "train": {"epochs": 3, "batch_size": 16, "progress": False},
        "output": {"dir": str(tmp_path / "run")},
    }
    for name, values in sections.items():
        recipe.setdefault(name, {}).update(values)
    return recipe


@pytest.fixture
def make_recipe(tmp_path):
    return lambda **sections: toy_recipe(tmp_path, **sections)


@pytest.fixture
def toy_env(tmp_path):
    """Environment for a subprocess `ft` that finds the toy plugin through a
    real `ft` entry point (a .dist-info folder on PYTHONPATH)."""
    import os

    site = tmp_path / "site"
    info = site / "ftkit_toy-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ftkit-toy\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text("[ft]\ntoy = toy_plugin\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    return env


def write_recipe(path: Path, recipe: dict) -> Path:
    import tomli_w

    path.write_text(tomli_w.dumps(recipe))
    return path
