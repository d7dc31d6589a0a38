"""The `ft` command as a user runs it: a subprocess, exit codes, messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


from toy_plugin import toy_recipe, write_recipe

FT = [sys.executable, "-m", "ft.cli"]


def ft_cmd(*args, env=None, cwd=None):
    return subprocess.run([*FT, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_help_does_not_import_torch():
    code = ("import sys; from ft.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "usage: ft" in out.stdout
    assert out.stderr.strip().endswith("NO-TORCH")


def test_console_script_runs():
    exe = Path(sys.executable).with_name("ft")
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("ftkit ")


def test_run_validate_show_through_entry_point(toy_env, tmp_path):
    path = write_recipe(tmp_path / "toy.toml", toy_recipe(tmp_path, train={"epochs": 2}))
    out = ft_cmd("validate", str(path), env=toy_env)
    assert out.returncode == 0, out.stderr
    assert "is valid" in out.stdout
    shown = ft_cmd("show", str(path), "--set", "train.epochs=7", env=toy_env)
    assert shown.returncode == 0 and "epochs = 7" in shown.stdout and "n_train = 240" in shown.stdout
    run = ft_cmd("run", str(path), env=toy_env)
    assert run.returncode == 0, run.stderr
    assert "ft: device cpu" in run.stdout and "test_accuracy" in run.stdout
    plugins = json.loads(ft_cmd("plugins", "--json", env=toy_env).stdout)
    toy = next(p for p in plugins["plugins"] if p["plugin"] == "toy")
    assert toy["distribution"] == "ftkit-toy" and toy["provides"]["backbone"] == ["toy_mlp"]


def test_bad_recipe_exits_2_without_traceback(toy_env, tmp_path):
    recipe = toy_recipe(tmp_path)
    recipe["train"]["epoch"] = 3
    path = write_recipe(tmp_path / "bad.toml", recipe)
    out = ft_cmd("run", str(path), env=toy_env)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert str(path) in out.stderr and "train.epoch: unknown key" in out.stderr and "did you mean 'epochs'" in out.stderr
    debug = ft_cmd("--debug", "run", str(path), env=toy_env)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_bad_override_and_missing_file_exit_2(toy_env, tmp_path):
    path = write_recipe(tmp_path / "r.toml", toy_recipe(tmp_path))
    out = ft_cmd("validate", str(path), "--set", "train.batch_size=0", env=toy_env)
    assert out.returncode == 2 and "train.batch_size (from --set)" in out.stderr
    missing = ft_cmd("run", str(tmp_path / "nope.toml"), env=toy_env)
    assert missing.returncode == 2 and "recipe file not found" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_eval_on_a_non_run_dir_exits_2(toy_env, tmp_path):
    out = ft_cmd("eval", str(tmp_path), env=toy_env)
    assert out.returncode == 2 and "not an ft run directory" in out.stderr
