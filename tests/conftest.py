"""Shared fixtures: the toy plugin registered in-process, toy recipes, and an
environment in which a subprocess `ft` finds the toy plugin."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# One torch thread in tests (and the subprocesses they start): small models
# gain nothing from more, and OpenMP threads spin-waiting on a busy 2-core
# machine made steps 10-100x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Tests never reach for a model hub (set before transformers/huggingface_hub read it).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

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


@pytest.fixture
def make_recipe(tmp_path):
    from toy_plugin import toy_recipe

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
    env["PYTHONFAULTHANDLER"] = "1"  # a process that aborts prints where
    return env
