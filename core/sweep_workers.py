"""``ft sweep --workers K``: K trials at once on this machine.

The parent starts K ``ft sweep ... --workers 1`` processes on the same
study and sweep folder, each with its share of the machine: the CPU threads
(``OMP_NUM_THREADS`` = cores // K) and, where there are GPUs, its own
(``CUDA_VISIBLE_DEVICES``; more workers than GPUs share them round-robin).
The study keeps them from running more than ``--trials`` trials between
them (:mod:`ft.sweep_study`). The parent waits, then writes the results;
the workers only run trials (they carry ``FT_SWEEP_WORKER``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

from .errors import FtError

#: set in the environment of the workers ``ft sweep --workers K`` starts ("2/4"): they only run trials
WORKER_ENV = "FT_SWEEP_WORKER"


def worker_commands(ctx: Any, k: int) -> list[list[str]]:
    """The command line of each worker."""
    if ctx.path is None:
        raise FtError("--workers needs the recipe as a TOML file (each worker reads it)", where="ft sweep",
                      hint="write the recipe to a .toml file and pass its path")
    command = [sys.executable, "-m", "ft.cli", "sweep", str(ctx.path), *(f"--set={o}" for o in ctx.overrides),
               "--trials", str(ctx.trials), "--sampler", ctx.sampler, "--pruner", ctx.pruner, "--storage", ctx.url,
               "--study", ctx.study_name, "--dir", str(ctx.sweep_dir), "--workers", "1"]
    if ctx.timeout:
        command += ["--timeout", str(ctx.timeout)]
    if ctx.quiet:
        command.append("--quiet")
    return [command] * k


def worker_environments(k: int) -> list[dict[str, str]]:
    """Each worker's environment: its CPU threads and its GPUs."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // k)
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():  # a limit already set stays a limit
        threads = min(threads, int(os.environ["OMP_NUM_THREADS"]))
    gpus = _visible_gpus()
    envs = []
    for i in range(k):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        env[WORKER_ENV] = f"{i + 1}/{k}"
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus[i::k] if k <= len(gpus) else [gpus[i % len(gpus)]])
        envs.append(env)
    return envs


def _visible_gpus() -> list[str]:
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g for g in listed.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def run_workers(ctx: Any, k: int) -> None:
    """Start the K workers and wait for them. A Ctrl-C here is passed on to
    each: it stops after its trial's checkpoint (a second one aborts), and
    ``KeyboardInterrupt`` is raised here once all have stopped. A worker that fails is an :class:`FtError` (its own
    message is in the output above)."""
    envs = worker_environments(k)
    shares = envs[0]["OMP_NUM_THREADS"] + " CPU thread(s) each" + (
        "; GPUs " + " | ".join(e["CUDA_VISIBLE_DEVICES"] for e in envs) if "CUDA_VISIBLE_DEVICES" in envs[0] else "")
    ctx.say(f"starting {k} workers ({shares})")
    # each in its own session: a Ctrl-C reaches them once, from here, not twice (terminal and parent)
    procs = [subprocess.Popen(command, env=env, start_new_session=True)
             for command, env in zip(worker_commands(ctx, k), envs)]
    interrupted = False
    while True:
        try:
            for proc in procs:
                proc.wait()
            break
        except KeyboardInterrupt:
            interrupted = True
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
    codes = [proc.returncode for proc in procs]
    if interrupted or 130 in codes or -signal.SIGINT in codes:
        raise KeyboardInterrupt
    failed = [f"worker {i + 1} (exit {code})" for i, code in enumerate(codes) if code != 0]
    if failed:
        raise FtError(f"{', '.join(failed)} stopped with an error (its message is above)",
                      where=f"study {ctx.study_name!r}", hint=f"fix it, then continue: {ctx.command()}")
