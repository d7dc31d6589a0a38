"""Helpers for the logger tests: a callback that keeps what the trainer
reported, and the run's metrics.jsonl read back."""

from __future__ import annotations

import json
from pathlib import Path


class Reported:
    """What the trainer handed to the lifecycle hooks (the loggers' source of truth)."""

    def __init__(self):
        self.steps: dict[int, dict] = {}
        self.epochs: dict[int, dict] = {}
        self.summary: dict | None = None

    def ft_step_end(self, run, step, metrics):
        self.steps[step] = dict(metrics)

    def ft_epoch_end(self, run, epoch, metrics):
        self.epochs[epoch] = dict(metrics)

    def ft_run_end(self, run, summary):
        self.summary = summary


class FailAtStep:
    """Raises at optimizer step ``step``: a run that dies mid-epoch, after
    its logger recorded steps its last checkpoint does not hold."""

    def __init__(self, step: int):
        self.step = step

    def ft_step_end(self, run, step, metrics):
        if step == self.step:
            raise RuntimeError(f"stopped on purpose at step {step}")


def history(run_dir: Path) -> list[dict]:
    """metrics.jsonl, one dict per epoch."""
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
