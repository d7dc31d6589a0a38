"""The README's own examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_trainer_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    example = next(b for b in blocks if "ft.Trainer(" in b)
    out = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "val_loss" in out.stdout


def test_readme_test_command_is_what_ci_runs():
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    install = re.search(r"```bash\n(python3 -m venv .*?)\n```", README, flags=re.S).group(1)
    for step in install.split(" && "):
        step = step.replace(". .venv/bin/activate", ". .venv/bin/activate")
        assert step.strip() in ci or step.strip().startswith("python3 -m venv"), step
    assert "python -m pytest\n```" in README and ci.rstrip().endswith("python -m pytest")
