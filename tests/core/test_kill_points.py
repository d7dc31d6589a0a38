"""A run killed at any moment of its checkpoint and best-model writes resumes
to exactly the unbroken run's result.

The kill is injected, not timed: a forked child runs ``ft.run`` with every
file-system step of the run directory's writes (weights, state, JSON
files, fsyncs, renames, folder deletions, metrics lines) counted, and
SIGKILLs itself just before step ``k``. A metrics line is cut in half
before the kill. Then ``ft run --resume`` finishes the run in this
process, and its metrics and weights must equal an unbroken run's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import ft
from ft import rundir

#: figures that measure the machine, not the training
TIMING = {"time", "elapsed", "examples_per_s", "tokens_per_s", "data_wait", "peak_mem_mb"}


class KillSwitch:
    """Counts the run directory's write steps; SIGKILLs before step ``at``."""

    def __init__(self, at: int | None, trace: Path | None = None):
        self.at, self.trace, self.count = at, trace, 0
        self.saved: list[tuple[object, str, object]] = []

    def step(self, label: str) -> None:
        self.count += 1
        if self.trace is not None:
            with self.trace.open("a") as fh:
                fh.write(label + "\n")
        if self.count == self.at:
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(self, owner: object, name: str, label: str) -> None:
        original = getattr(owner, name)

        def counted(*args, **kwargs):
            self.step(label)
            return original(*args, **kwargs)

        self.saved.append((owner, name, original))
        setattr(owner, name, counted)

    def arm(self) -> None:
        from ft import checkpoint

        self.wrap(checkpoint, "save_weights", "weights")
        self.wrap(torch, "save", "state.pt")
        self.wrap(os, "fsync", "fsync")
        self.wrap(os, "replace", "rename")
        self.wrap(shutil, "rmtree", "rmtree")
        write = rundir.MetricsLog.write
        switch = self

        def cut_line(log, record):  # the kill lands halfway through a metrics line
            switch.count += 1
            if switch.trace is not None:
                with switch.trace.open("a") as fh:
                    fh.write("metrics line\n")
            if switch.count == switch.at:
                line = rundir.strict_json(record)
                with log.path.open("a") as fh:
                    fh.write(line[: len(line) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            return write(log, record)

        rundir.MetricsLog.write = cut_line
        self.saved.append((rundir.MetricsLog, "write", write))

    def disarm(self) -> None:
        for owner, name, original in reversed(self.saved):
            setattr(owner, name, original)


def run_in_child(recipe: dict, switch: KillSwitch) -> int:
    """``ft.run(recipe)`` in a forked child with ``switch`` armed; the child's wait status."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            switch.arm()
            ft.run(recipe, quiet=True)
        except BaseException:
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return status


def outcome(run_dir: Path) -> tuple[list[dict], dict, dict]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    metrics = [{k: v for k, v in r.items() if k not in TIMING} for r in lines]
    best = load_file(str(run_dir / "best" / "model.safetensors"))
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())["checkpoint"]
    last = load_file(str(run_dir / "checkpoints" / latest / "model.safetensors"))
    return metrics, best, last


def same(a: tuple, b: tuple) -> bool:
    if a[0] != b[0]:
        return False
    return all(set(x) == set(y) and all(torch.equal(x[k], y[k]) for k in x) for x, y in zip(a[1:], b[1:]))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An unbroken run and the trace of its write steps."""
    import toy_plugin

    from ft import _registry

    _registry.reset_registry()
    _registry.get_registry().register(toy_plugin, "toy")
    root = tmp_path_factory.mktemp("kill")
    trace = root / "trace.txt"
    recipe = toy_recipe(root / "unbroken")
    status = run_in_child(recipe, KillSwitch(None, trace))
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    yield root, outcome(root / "unbroken"), trace.read_text().splitlines()
    _registry.reset_registry()


def toy_recipe(run_dir: Path) -> dict:
    from toy_plugin import toy_recipe as base

    recipe = base(run_dir.parent, data={"n_train": 64, "n_val": 32, "n_test": 16},
                  train={"epochs": 2, "monitor": "val_loss", "keep_checkpoints": 1}, optim={"lr": 3e-2})
    recipe["output"] = {"dir": str(run_dir)}
    return recipe


def test_the_trace_covers_every_kind_of_write(reference):
    _, _, trace = reference
    # two epochs: each writes a checkpoint (weights, state, JSON, renames, fsyncs; the second prunes the
    # first) and a metrics line, and both improve best/ (the second replaces the first's)
    for kind in ("weights", "state.pt", "fsync", "rename", "rmtree", "metrics line"):
        assert kind in trace, kind
    assert trace.count("metrics line") == 2 and trace.count("weights") == 4
    print(f"{len(trace)} kill points: " + ", ".join(f"{k} x{trace.count(k)}" for k in sorted(set(trace))))


def test_a_kill_at_every_write_step_resumes_to_the_unbroken_run(reference):
    root, unbroken, trace = reference
    failures = []
    for k in range(1, len(trace) + 1):
        run_dir = root / f"killed-{k}"
        recipe = toy_recipe(run_dir)
        status = run_in_child(recipe, KillSwitch(k))
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"step {k} ({trace[k - 1]})"
        ft.run(recipe, quiet=True, resume=True)
        leftovers = [p.name for p in run_dir.rglob(".*") if p.name != ".lock"]
        if not same(outcome(run_dir), unbroken) or leftovers:
            failures.append((k, trace[k - 1], leftovers))
    assert not failures, failures
    assert len(trace) >= 25  # every step of two epochs' writes was a kill point
