"""When training stops: the same decision on every rank.

``max_steps`` counts the same steps everywhere; ``time_limit`` runs on rank
0's clock; a stop request (Ctrl-C, or SIGTERM from a scheduler ending the
job) may reach any one rank. The ranks share these flags at steps they
agree on, so they all stop after the same step and write one checkpoint;
nobody is left waiting in a collective for a rank that has gone.

A run that ``time_limit`` cut short is not the recipe's result, and
:func:`time_limit_note` is the sentence that says so wherever the run
reports (the console, summary.json, MODEL_CARD.md).
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import torch

from .distributed import Distributed


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM while it is active: stop after the current
    step, with a checkpoint. A second signal a second or more later aborts
    at once (``torchrun`` forwards the terminal's Ctrl-C to its workers,
    which then see it twice within moments)."""

    def __init__(self) -> None:
        self.requested = False
        self._first = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        now = time.monotonic()
        if self.requested:
            if now - self._first > 1.0:
                raise KeyboardInterrupt
            return
        self.requested, self._first = True, now
        print("ft: stopping after this step and saving a checkpoint (press Ctrl-C again to abort)", flush=True)


class StopCheck:
    """Why training stops after a step, the same on every rank:
    ``"max_steps"``, ``"interrupted"`` (a request on any rank),
    ``"time_limit"`` (rank 0's clock) or ``"epochs"`` (it goes on).

    With several ranks the flags travel in one small all-reduce over the
    gloo control group, at most about every ``interval`` seconds: rank 0
    measures the step time and names the step of the next check in the
    same message, so every rank checks at the same steps (a head trained on
    cached features takes a step in a millisecond or two; a collective per
    step would double that). A time limit or a Ctrl-C is then acted on
    within ``interval`` seconds, at a step all ranks agree on.
    """

    def __init__(self, dist: Distributed, request: StopRequest, interval: float = 0.2):
        self.dist = dist
        self.request = request
        self.interval = interval
        self._next = 0  # the step of the next shared check
        self._mark: tuple[int, float] | None = None  # (step, time) of the last check, rank 0's clock

    def reason(self, step: int, max_steps: int | None, elapsed: float, time_limit: float | None) -> str:
        if max_steps and step >= max_steps:
            return "max_steps"
        over_time = bool(time_limit) and self.dist.is_main and elapsed >= time_limit
        requested = self.request.requested
        if self.dist.enabled:
            if step < self._next:
                return "epochs"
            flags = torch.tensor([int(over_time), int(requested), self._gap(step) if self.dist.is_main else 0])
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX, group=self.dist.control)
            over_time, requested = bool(flags[0]), bool(flags[1])
            self._next = step + int(flags[2])
        if requested:
            return "interrupted"
        return "time_limit" if over_time else "epochs"

    def _gap(self, step: int) -> int:
        """Steps until the next check: about ``interval`` seconds' worth."""
        now = time.perf_counter()
        gap = 1
        if self._mark is not None and step > self._mark[0]:
            per_step = (now - self._mark[1]) / (step - self._mark[0])
            gap = max(1, min(1000, int(self.interval / max(per_step, 1e-6))))
        self._mark = (step, now)
        return gap


def time_limit_note(stopped: str, epochs_completed: int, epochs_planned: int,
                    partial_steps: int = 0, steps_per_epoch: int = 0) -> str | None:
    """The plain sentence a run stopped by ``time_limit`` before its epochs
    ran out reports, e.g. "stopped by time_limit after 5 of 20 epochs: this
    is not the recipe's result" (with the steps taken into the next epoch
    when it stopped inside one); None for any other end. ``max_steps`` and
    early stopping are budgets the recipe sets, so their result is the
    recipe's and they get no note."""
    if stopped != "time_limit" or epochs_completed >= epochs_planned:
        return None
    done = f"{epochs_completed} of {epochs_planned} epochs"
    if partial_steps:
        done += f" and {partial_steps} of {steps_per_epoch} steps of epoch {epochs_completed + 1}"
    return f"stopped by time_limit after {done}: this is not the recipe's result"
