"""The logger plugin in CONTRIBUTING.md ("A logger plugin") is real code:
its package, laid out from the page's pyproject snippet and module, is
found through an `ft` entry point and records a run as the page says."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import ft
import pytest
from logger_testkit import history
from toy_plugin import toy_recipe, write_recipe

PAGE = (Path(__file__).resolve().parents[3] / "CONTRIBUTING.md").read_text()
FT = [sys.executable, "-m", "ft.cli"]


def example_code() -> str:
    return re.search(r"<!-- eventlog_plugin\.py -->\n```python\n(.*?)```", PAGE, flags=re.S).group(1)


def install_example(site: Path) -> None:
    """The package as the page describes it, with the .dist-info pip would
    write for it (its `ft` entry points from the page's pyproject.toml)."""
    pyproject = tomllib.loads(next(b for b in re.findall(r"```toml\n(.*?)```", PAGE, flags=re.S)
                                   if "ft-eventlog" in b))
    package = site / "ft_eventlog"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(example_code())
    name, version = pyproject["project"]["name"], pyproject["project"]["version"]
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    entry_points = pyproject["project"]["entry-points"]["ft"]
    (info / "entry_points.txt").write_text("[ft]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_example_package_is_found_and_records_a_run(toy_env, tmp_path):
    site = tmp_path / "example"
    install_example(site)
    env = {**toy_env, "PYTHONPATH": os.pathsep.join([str(site), toy_env["PYTHONPATH"]])}
    listed = subprocess.run([*FT, "plugins"], capture_output=True, text=True, env=env, timeout=300,
                            cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"eventlog\s.*ft-eventlog\s.*logger: eventlog\s.*ok", listed.stdout), listed.stdout

    recipe = toy_recipe(tmp_path)
    recipe["train"].update(epochs=2, log_every=5)
    path = write_recipe(tmp_path / "recipe.toml", recipe)
    out = subprocess.run([*FT, "run", str(path), "--log", "eventlog"], capture_output=True, text=True, env=env,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / "run"
    events = read_events(run_dir / "events.jsonl")
    per_epoch = ["step", "step", "step", "checkpoint", "epoch"]
    assert [e["event"] for e in events] == ["start", *per_epoch, *per_epoch, "end"]
    assert events[0]["recipe"]["backbone"]["name"] == "toy_mlp" and events[0]["step"] == 0
    assert [e["step"] for e in events if e["event"] == "step"] == [5, 10, 15, 20, 25, 30]
    epochs = [{k: v for k, v in e.items() if k not in ("event", "time")} for e in events if e["event"] == "epoch"]
    assert epochs == [{k: v for k, v in row.items() if k != "time"} for row in history(run_dir)]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert events[-1]["metrics"] == summary["metrics"] and events[-1]["best_epoch"] == summary["best_epoch"]


def test_the_example_options_work_as_documented(registry, make_recipe, tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("eventlog_from_contributing", _write(tmp_path))
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # as an import does: pydantic resolves the hints there
    spec.loader.exec_module(module)
    registry.register(module, "eventlog")
    result = ft.run(make_recipe(train={"epochs": 1, "log_every": 5}), ["log.eventlog.every_step=false"],
                    loggers=["eventlog"], quiet=True)
    assert [e["event"] for e in read_events(result.run_dir / "events.jsonl")] == \
        ["start", "checkpoint", "epoch", "end"]
    with pytest.raises(ft.RecipeError) as caught:  # options are validated like every section
        ft.run(make_recipe(), ["log.eventlog.every_stp=false"], loggers=["eventlog"], quiet=True)
    assert "log.eventlog.every_stp" in str(caught.value) and "every_step" in str(caught.value)


def _write(tmp_path: Path) -> Path:
    path = tmp_path / "eventlog_plugin.py"
    path.write_text(example_code())
    return path
