"""DDP under torchrun on CPU (gloo): two ranks with batch 16 each train the
same model as one process with batch 32."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from toy_plugin import toy_recipe, write_recipe


def test_two_rank_ddp_equals_single_process_large_batch(toy_env, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    sections = dict(backbone={"batchnorm": False}, optim={"lr": 0.01, "schedule": "cosine"})
    ddp = write_recipe(tmp_path / "ddp.toml", toy_recipe(tmp_path, **sections, train={"epochs": 2, "batch_size": 16},
                                                         output={"dir": str(tmp_path / "ddp")}))
    single = write_recipe(tmp_path / "one.toml", toy_recipe(tmp_path, **sections,
                                                            train={"epochs": 2, "batch_size": 32},
                                                            output={"dir": str(tmp_path / "one")}))
    env = {**toy_env, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29517", "-m", "ft.cli", "run",
                          str(ddp)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "world_size 2" in out.stdout
    ref = subprocess.run([sys.executable, "-m", "ft.cli", "run", str(single)], capture_output=True, text=True,
                         env=env, timeout=300)
    assert ref.returncode == 0, ref.stderr[-3000:]

    a = load_file(str(tmp_path / "ddp" / "checkpoints" / "epoch-2" / "model.safetensors"))
    b = load_file(str(tmp_path / "one" / "checkpoints" / "epoch-2" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    # only rank 0 writes: one metrics line per epoch
    lines = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in lines] == [1, 2]
    assert json.loads(lines[-1])["step"] == 16  # 240 examples / (16 x 2 ranks) = 8 steps per epoch
