"""Run recipes on 2 ranks (torchrun, gloo, CPU) and in one process, and
compare: the tests of "ranks are one run".

:func:`run_jobs` writes each recipe to a file and runs them all in ONE
launch (torchrun start-up costs seconds), through :mod:`ddp_driver`, which
calls ``ft.run`` (or ``ft.evaluate_run``) on every rank and leaves each
rank's view of the outcome in ``<out>/<name>.rank<R>.json`` plus its final
weights in ``<name>.rank<R>.safetensors``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from ft.meters import MEASURED

HERE = Path(__file__).parent
DRIVER = HERE / "ddp_driver.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun() -> list[str]:
    return [str(Path(sys.executable).with_name("torchrun"))]


def ddp_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"  # a rank that aborts prints where
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    env.update(extra or {})
    return env


def run_jobs(jobs: list[dict], out: Path, nproc: int = 1, env: dict | None = None, timeout: int = 600,
             check: bool = True) -> subprocess.CompletedProcess:
    """Run ``jobs`` (``{"name", "recipe": dict | path, "overrides", "action"}``)
    on ``nproc`` ranks (1: a plain process) and return the finished process."""
    from toy_plugin import write_recipe

    out.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        if isinstance(job.get("recipe"), dict):
            job["recipe"] = str(write_recipe(out / f"{job['name']}.toml", job["recipe"]))
    spec = out / "jobs.json"
    spec.write_text(json.dumps({"out": str(out), "jobs": jobs}))
    if nproc > 1:
        command = [*torchrun(), "--nproc_per_node", str(nproc), "--master_port", str(free_port()), str(DRIVER),
                   str(spec)]
    else:
        command = [sys.executable, str(DRIVER), str(spec)]
    done = subprocess.run(command, capture_output=True, text=True, env=ddp_env(env), timeout=timeout)
    if check:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def outcome(out: Path, name: str, rank: int = 0) -> dict:
    return json.loads((out / f"{name}.rank{rank}.json").read_text())


def weights(out: Path, name: str, rank: int = 0) -> dict[str, torch.Tensor]:
    return load_file(str(out / f"{name}.rank{rank}.safetensors"))


def history(run_dir: str | Path) -> list[dict]:
    """metrics.jsonl without the measured figures (time, throughput, memory)."""
    lines = Path(run_dir, "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in MEASURED} for line in lines]


def assert_close_dicts(a: dict, b: dict, rtol: float, atol: float, what: str) -> None:
    assert a.keys() == b.keys(), (what, sorted(a), sorted(b))
    for key in a:
        if isinstance(a[key], (int, float)) and isinstance(b[key], (int, float)):
            assert abs(a[key] - b[key]) <= atol + rtol * abs(b[key]), (what, key, a[key], b[key])
        else:
            assert a[key] == b[key], (what, key, a[key], b[key])


def assert_same_training(ddp_out: Path, single_out: Path, name: str, weight_tol: float = 1e-5,
                         metric_tol: float = 1e-5) -> None:
    """A 2-rank run equals the one-process run: per-epoch figures, final
    val/test metrics, final weights (within ``weight_tol``), and every rank
    ends with the same weights and figures."""
    ranks = [outcome(ddp_out, name, r) for r in (0, 1)]
    single = outcome(single_out, name)
    assert ranks[0]["metrics"] == ranks[1]["metrics"] and ranks[0]["steps"] == ranks[1]["steps"]
    assert ranks[0]["steps"] == single["steps"] and ranks[0]["stopped"] == single["stopped"]
    h2, h1 = history(ranks[0]["run_dir"]), history(single["run_dir"])
    assert len(h2) == len(h1)
    for epoch_2, epoch_1 in zip(h2, h1):
        assert_close_dicts(epoch_2, epoch_1, metric_tol, 1e-7, f"{name} epoch {epoch_1['epoch']}")
    for split in single["metrics"]:
        assert_close_dicts(ranks[0]["metrics"][split], single["metrics"][split], metric_tol, 1e-7, f"{name} {split}")
    w0, w1, ws = weights(ddp_out, name, 0), weights(ddp_out, name, 1), weights(single_out, name)
    assert w0.keys() == ws.keys()
    for key in ws:
        assert torch.equal(w0[key], w1[key]), f"{name}: ranks disagree on {key}"
        torch.testing.assert_close(w0[key], ws[key], rtol=weight_tol, atol=weight_tol, msg=lambda m: f"{key}: {m}")
