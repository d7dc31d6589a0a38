"""`ft new plugin NAME`: the package it writes installs, lists, validates,
runs and passes its own tests; bad names and occupied folders are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from ft.scaffold import new_plugin

FT = [sys.executable, "-m", "ft.cli"]


def ft_cmd(*args, env=None, cwd=None):
    return subprocess.run([*FT, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``ft new plugin tabby`` installed (no network) into a folder put on
    PYTHONPATH: (the package folder, the environment for subprocesses)."""
    root = tmp_path_factory.mktemp("scaffold")
    out = ft_cmd("new", "plugin", "tabby", "--dir", str(root))
    assert out.returncode == 0, out.stderr
    package = root / "ft-tabby"
    assert str(package) in out.stdout and "pip install -e" in out.stdout
    site = root / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(site), str(package)],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return package, env


def test_writes_the_whole_package(tmp_path):
    root = new_plugin("tabby", tmp_path)
    written = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert written == ["README.md", "ft_tabby/__init__.py", "ft_tabby/plugin.py", "pyproject.toml",
                       "recipes/data/example.csv", "recipes/tabby_example.toml", "tests/test_plugin.py"]
    pyproject = (root / "pyproject.toml").read_text()
    assert 'name = "ft-tabby"' in pyproject and 'dependencies = ["ftkit"]' in pyproject
    assert '[project.entry-points.ft]\ntabby = "ft_tabby.plugin"' in pyproject
    tests = (root / "tests/test_plugin.py").read_text()
    assert "from ft.testing import check_plugin" in tests and 'check_plugin("ft-tabby", tmp_path)' in tests
    rows = (root / "recipes/data/example.csv").read_text().splitlines()
    assert rows[0] == "f1,f2,f3,f4,label" and len(rows) == 121
    # the same package every time: a second run into another folder writes the same bytes
    again = new_plugin("tabby", tmp_path / "again")
    assert all((again / p).read_bytes() == (root / p).read_bytes() for p in written)


@pytest.mark.slow
def test_installed_plugin_is_listed(installed):
    _, env = installed
    out = ft_cmd("plugins", "--json", env=env)
    assert out.returncode == 0, out.stderr
    record = next(p for p in json.loads(out.stdout)["plugins"] if p["plugin"] == "tabby")
    assert record["distribution"] == "ft-tabby" and record["status"] == "ok", record
    assert record["provides"] == {"backbone": ["tabby_mlp"], "dataset format": ["tabby_csv"]}


@pytest.mark.slow
def test_example_recipe_validates_and_runs(installed, tmp_path):
    package, env = installed
    recipe = "recipes/tabby_example.toml"
    valid = ft_cmd("validate", recipe, env=env, cwd=package)
    assert valid.returncode == 0, valid.stderr
    assert "120 rows (72 train / 24 val / 24 test), 4 feature columns, 3 classes" in valid.stdout
    run = ft_cmd("run", recipe, "--set", f"output.dir={tmp_path / 'run'}", env=env, cwd=package)
    assert run.returncode == 0, run.stderr
    assert "test_accuracy" in run.stdout, run.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["metrics"]["test"]["accuracy"] >= 0.9, summary["metrics"]


@pytest.mark.slow
def test_package_passes_its_own_tests(installed):
    package, env = installed
    out = subprocess.run([sys.executable, "-m", "pytest", str(package / "tests"), "-q", "-p", "no:cacheprovider"],
                         capture_output=True, text=True, env=env, cwd=package, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "2 passed" in out.stdout, out.stdout[-2000:]


@pytest.mark.parametrize("name", ["9lives", "my-plugin", "class", "Tabular", ""])
def test_refuses_a_name_that_is_not_an_identifier(name, tmp_path):
    out = ft_cmd("new", "plugin", name, "--dir", str(tmp_path))
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert f"{name!r} is not a valid plugin name" in out.stderr and "lowercase Python identifier" in out.stderr
    assert not any(tmp_path.iterdir())


def test_refuses_an_occupied_folder(tmp_path):
    target = tmp_path / "ft-tabby"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    out = ft_cmd("new", "plugin", "tabby", "--dir", str(tmp_path))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert f"{target}: the target folder exists and is not empty" in out.stderr and "hint:" in out.stderr
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]


def test_an_empty_folder_is_used(tmp_path):
    (tmp_path / "ft-tabby").mkdir()
    assert (new_plugin("tabby", tmp_path) / "ft_tabby" / "plugin.py").is_file()


def contributing_blocks() -> list[tuple[str, str]]:
    """``(the paragraph before, the code)`` of each python block in CONTRIBUTING.md."""
    text = (Path(__file__).parents[2] / "CONTRIBUTING.md").read_text()
    parts = text.split("```python\n")
    return [(" ".join(before.rstrip().rsplit("\n\n", 1)[-1].split()), code.split("```", 1)[0])
            for before, code in zip(parts, parts[1:])]


def test_contributing_quotes_the_generated_code(tmp_path):
    plugin = (new_plugin("tabular", tmp_path) / "ft_tabular" / "plugin.py").read_text()
    quoted = [code for before, code in contributing_blocks() if "From the generated `plugin.py`" in before]
    assert len(quoted) == 2  # the backbone and the dataset format
    for code in quoted:
        for line in code.splitlines():
            assert line.strip() == "..." or line in plugin.splitlines(), f"not in the generated plugin.py: {line!r}"


@pytest.mark.slow
def test_contributing_head_and_freeze_strategy_work(registry, tmp_path):
    from ft.testing import check_freeze_strategy, check_head

    examples = [code for before, code in contributing_blocks() if "smallest working one" in before]
    assert len(examples) == 2  # the head, the freeze strategy
    module = types.ModuleType("contributing_examples")
    exec("import torch\nfrom torch import nn\nimport ft\n" + "\n".join(examples), module.__dict__)
    registry.register(module, "contributing_examples")
    check_head("tabular_linear")
    check_freeze_strategy("tabular_freeze_first")
