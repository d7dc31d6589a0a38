"""`pip install .` gives a working `ft`: build the wheel, install it into a
fresh virtual environment, run the console script."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_and_runs(tmp_path):
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist),
                            str(ROOT)], capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheel = next(dist.glob("ftkit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("ft/__init__.py", "ft/hookspecs.py", "ft/cli.py", "ft/plugins/heads/__init__.py",
                   "ft/plugins/freeze/__init__.py"):
        assert module in names, module
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "ft = ft.cli:main" in text and "[ft]" in text and "heads = ft.plugins.heads" in text

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    # only what `ft --help` needs: the wheel itself and pluggy (no torch)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel), "pluggy"], check=True,
                   capture_output=True, text=True)
    out = subprocess.run([str(env_dir / "bin" / "ft"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "usage: ft" in out.stdout and "run" in out.stdout
