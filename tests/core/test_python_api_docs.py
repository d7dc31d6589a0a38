"""docs/python_api.md runs as written: its ```python blocks, in order, as
one session in an empty folder (a fresh process, with only the installed
plugins), so a documented example that breaks fails the suite."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "python_api.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def test_every_documented_ft_name_has_an_example():
    code = "\n".join(python_blocks())
    for name in ("ft.run(", "ft.load_recipe(", "ft.build_model(", "ft.Trainer(", "ft.register_plugin(",
                 "ft.load_run(", "ft.evaluate_run(", "ft.predict_run(", "ft.export_run(", "callbacks=["):
        assert name in code, name


def test_python_api_examples_run_in_order(tmp_path):
    blocks = python_blocks()
    # each block is announced, so a failure names the block that broke
    script = "".join(f"print('--- block {i}', flush=True)\n{block}\n" for i, block in enumerate(blocks, 1))
    (tmp_path / "session.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of tests/ on the path
    out = subprocess.run([sys.executable, "session.py"], cwd=tmp_path, capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"--- block {len(blocks)}" in out.stdout
    text = out.stdout
    assert "did you mean 'linear'" in text  # the recipe typo
    assert "did you mean 'ft_epoch_end'" in text  # the misnamed callback
    assert "failed in building the backbone (backbone 'broken_mlp'): ValueError" in text
    assert (tmp_path / "runs" / "points" / "MODEL_CARD.md").exists() and not (tmp_path / "runs" / "broken").exists()
