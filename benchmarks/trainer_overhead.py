"""ft's trainer vs the textbook PyTorch loop: time per epoch and peak memory.

    python benchmarks/trainer_overhead.py [--rounds 7] [--batches 60]

Time: the same model, data, batch size and AdamW settings, one epoch at a
time, alternating which loop goes first, in ONE process (machines here are
noisy, so only side-by-side ratios mean anything). Both wall time and the
process's CPU time are reported; with ``--threads 1`` CPU time is the figure
least disturbed by other work on the machine. Memory: each loop in its
own fresh subprocess, peak RSS growth over the process's RSS after building
model and data. Targets (issue 2): time ratio ft/plain <= 1.03, memory <= 1.05.

A third loop, ``ft-nofig``, is ft's trainer with the per-epoch figures
(examples/s, data wait, peak memory: ``ft.meters.EpochMeter``) patched out,
interleaved with the others: the ratio ft/ft-nofig is what those figures
cost (scale-out issue: <= 1.02). The two clock reads per batch around the
loader stay in both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ft
import ft.trainer
from ft.meters import EpochMeter


class NoFigures(EpochMeter):
    """The meter with nothing to do: no counting, no memory reads, no figures."""

    def start(self) -> None:
        pass

    def waited(self, seconds: float) -> None:
        pass

    def count(self, examples: int, tokens) -> None:
        pass

    def figures(self, dist) -> dict:
        return {}


def make(seed: int, n: int):
    torch.manual_seed(seed)
    model = nn.Sequential(  # a small CNN: each step costs milliseconds, like a real fine-tune's head + blocks
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(128, 10))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return model, TensorDataset(x, y)


def plain_epoch(model, loader, opt, loss_fn) -> None:
    model.train()
    for x, y in loader:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()


def ft_trainer(model, data, batch):
    trainer = ft.Trainer(model, data, None, loss_fn=nn.functional.cross_entropy,
                         train={"epochs": 1, "batch_size": batch, "progress": False, "checkpoint": False},
                         optim={"lr": 1e-3, "weight_decay": 0.01, "schedule": "constant"}, quiet=True)
    trainer.setup()
    return trainer


def status_kb(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def memory_child(kind: str, batches: int, batch: int) -> None:
    model, data = make(0, batches * batch)
    # reset the kernel's peak-RSS mark, so the peak below is the training's own (importing torch peaks higher)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    rss0 = status_kb("VmRSS")
    if kind == "plain":
        loader = DataLoader(data, batch_size=batch, shuffle=True)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, foreach=True)
        plain_epoch(model, loader, opt, nn.functional.cross_entropy)
    else:
        ft_trainer(model, data, batch).fit()
    peak = status_kb("VmHWM")
    print(json.dumps({"kind": kind, "growth_kb": peak - rss0, "peak_kb": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description="ft trainer overhead vs a plain loop")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--memory-child", choices=["plain", "ft"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child, args.batches, args.batch)
        return

    n = args.batches * args.batch
    plain_model, data = make(0, n)
    ft_model, _ = make(0, n)
    loader = DataLoader(data, batch_size=args.batch, shuffle=True)
    opt = torch.optim.AdamW(plain_model.parameters(), lr=1e-3, weight_decay=0.01, foreach=True)
    trainer = ft_trainer(ft_model, data, args.batch)
    nofig_model, _ = make(0, n)
    nofig = ft_trainer(nofig_model, data, args.batch)

    def fit_without_figures() -> None:
        ft.trainer.EpochMeter = NoFigures
        try:
            nofig.fit()
        finally:
            ft.trainer.EpochMeter = EpochMeter

    run = {"ft": trainer.fit, "ft-nofig": fit_without_figures,
           "plain": lambda: plain_epoch(plain_model, loader, opt, nn.functional.cross_entropy)}
    for fn in run.values():  # warm-up
        fn()
    wall = {kind: [] for kind in run}
    cpu = {kind: [] for kind in run}
    kinds = list(run)
    for r in range(args.rounds):
        order = kinds[r % 3:] + kinds[:r % 3]  # each loop takes each place in turn
        for kind in order:
            w0, c0 = time.perf_counter(), time.process_time()
            run[kind]()
            wall[kind].append(time.perf_counter() - w0)
            cpu[kind].append(time.process_time() - c0)
        print(f"round {r + 1}: wall " + " ".join(f"{k} {wall[k][-1]:.3f} s" for k in kinds)
              + " | cpu " + " ".join(f"{k} {cpu[k][-1]:.3f} s" for k in kinds), flush=True)
    for name, series in (("wall", wall), ("cpu", cpu)):
        for a, b in (("ft", "plain"), ("ft", "ft-nofig")):
            ratios = [x / y for x, y in zip(series[a], series[b])]
            print(f"{name} time per epoch ({args.batches} batches of {args.batch}, {torch.get_num_threads()} "
                  f"thread(s)): {a} median {statistics.median(series[a]):.3f} s, {b} median "
                  f"{statistics.median(series[b]):.3f} s; ratio {a}/{b} median {statistics.median(ratios):.3f} "
                  f"(min {min(ratios):.3f}, max {max(ratios):.3f}); ratio of medians "
                  f"{statistics.median(series[a]) / statistics.median(series[b]):.3f}")

    growth = {}
    for kind in ("plain", "ft"):
        out = subprocess.run([sys.executable, __file__, "--memory-child", kind, "--batches", str(args.batches),
                              "--batch", str(args.batch), "--threads", str(args.threads)], capture_output=True, text=True, check=True)
        growth[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    ratio = growth["ft"]["peak_kb"] / growth["plain"]["peak_kb"]
    print(f"peak RSS during one epoch: ft {growth['ft']['peak_kb'] / 1024:.1f} MiB, "
          f"plain {growth['plain']['peak_kb'] / 1024:.1f} MiB; ratio ft/plain {ratio:.3f} "
          f"(growth over the RSS before training: ft {growth['ft']['growth_kb'] / 1024:.1f} MiB, "
          f"plain {growth['plain']['growth_kb'] / 1024:.1f} MiB)")


if __name__ == "__main__":
    main()
