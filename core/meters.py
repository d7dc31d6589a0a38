"""Per-epoch speed and memory figures: examples/s, tokens/s, time waiting
for data, peak memory.

They go into every epoch's line of metrics.jsonl and the progress output.
Counting costs two clock reads per batch; peak memory is read once per
epoch (CUDA: ``max_memory_allocated``; CPU: the process's peak resident set
size, reset at each epoch start where Linux allows it).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from .distributed import Distributed

#: metrics.jsonl keys that are measurements of time and memory (they differ between identical runs)
MEASURED = ("time", "elapsed", "examples_per_s", "tokens_per_s", "data_wait", "peak_mem_mb")

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _cpu_peak_mb() -> float | None:
    """Peak resident set size (VmHWM) in MB, or None off Linux."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_cpu_peak() -> None:
    """Start a new peak RSS window (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        pass  # not permitted here: the peak then spans the whole process


class EpochMeter:
    """Counts one epoch's examples, tokens and time spent waiting for data."""

    def __init__(self, device: torch.device):
        self.device = device
        self.start()

    def start(self) -> None:
        self.examples = 0
        self.tokens = 0
        self.has_tokens = False
        self.data_wait = 0.0
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            _reset_cpu_peak()
        self.t0 = time.perf_counter()

    def waited(self, seconds: float) -> None:
        self.data_wait += seconds

    def count(self, examples: int, tokens: int | None) -> None:
        self.examples += examples
        if tokens is not None:
            self.tokens += tokens
            self.has_tokens = True

    def figures(self, dist: Distributed) -> dict[str, float]:
        """The epoch's figures over all ranks: summed throughput, the
        slowest rank's data wait, the largest peak memory."""
        seconds = time.perf_counter() - self.t0
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            peak = _cpu_peak_mb() or 0.0
        sums = torch.tensor([float(self.examples), float(self.tokens)], dtype=torch.float64)
        maxes = torch.tensor([self.data_wait / max(seconds, 1e-9), peak, seconds], dtype=torch.float64)
        if dist.enabled:
            sums, maxes = dist.all_gather_object((sums, maxes)), None
            maxes = torch.stack([m for _, m in sums]).max(0).values
            sums = torch.stack([s for s, _ in sums]).sum(0)
        seconds = float(maxes[2])
        out = {"examples_per_s": round(float(sums[0]) / max(seconds, 1e-9), 2)}
        if self.has_tokens:
            out["tokens_per_s"] = round(float(sums[1]) / max(seconds, 1e-9), 1)
        out["data_wait"] = round(float(maxes[0]), 4)
        out["peak_mem_mb"] = round(float(maxes[1]), 1)
        return out
