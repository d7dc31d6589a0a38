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
