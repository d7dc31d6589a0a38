"""Ranks are one run: the process group and the decisions ranks share.

Under ``torchrun`` (or ``ft run --nproc-per-node N``) every rank runs the
same recipe. Rank 0 owns the run directory and every decision that must be
the same everywhere (where the run lives, when to stop, what to resume); it
makes them once and broadcasts them. An error that one rank meets is shared
with every rank before anyone goes on, so a mistake ends the run on all
ranks with one message instead of leaving the others waiting in a
collective. In one process every method here is a cheap no-op.

Small objects and flags travel over a gloo group (CPU), so these decisions
never wait on GPU work; tensors that live on the device (gradients, the
training loss) use the main group (NCCL on GPUs, gloo on CPUs).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from datetime import timedelta
from typing import Any, Callable, Iterator, NoReturn, TypeVar

import torch
import torch.distributed as dist

from .errors import FtError

T = TypeVar("T")

_CURRENT: "Distributed | None" = None


class Distributed:
    """This process's place in the run: rank, world size, local rank, groups.

    Build it with :func:`get_distributed`, which joins the process group the
    launcher described (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ...) once per
    process.
    """

    def __init__(self, world_size: int = 1, rank: int = 0, local_rank: int = 0, local_world_size: int = 1,
                 backend: str | None = None, control: Any = None, owns_group: bool = False):
        self.world_size = world_size
        self.rank = rank
        self.local_rank = local_rank
        self.local_world_size = local_world_size
        self.backend = backend
        self.control = control  # gloo group for objects and flags (None: the default group is gloo)
        self.owns_group = owns_group

    @property
    def enabled(self) -> bool:
        """More than one rank."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the run directory and decides."""
        return self.rank == 0

    def describe(self) -> str:
        """``"2 rank(s), backend gloo"``: for banners and env.json."""
        return f"{self.world_size} rank(s), backend {self.backend or 'none'}"

    # -- objects and flags (over the gloo control group) -------------------------

    def broadcast_object(self, obj: T, src: int = 0) -> T:
        """``obj`` from rank ``src`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj if self.rank == src else None]
        dist.broadcast_object_list(box, src=src, group=self.control)
        return box[0]

    def all_gather_object(self, obj: Any) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list = [None] * self.world_size
        dist.all_gather_object(out, obj, group=self.control)
        return out

    def gather_object(self, obj: Any) -> list | None:
        """Every rank's ``obj`` in rank order on rank 0; None elsewhere."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0, group=self.control)
        return out

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any rank."""
        if not self.enabled:
            return bool(flag)
        t = torch.tensor([int(bool(flag))])
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control)
        return bool(t.item())

    def barrier(self) -> None:
        """Wait until every rank gets here (nothing to wait for in one process)."""
        if self.enabled:
            dist.barrier(group=self.control)

    def decide(self, fn: Callable[[], T]) -> T:
        """Rank 0 runs ``fn``; every rank gets its result, or raises the
        :class:`FtError` it raised."""
        if not self.enabled:
            return fn()
        outcome: tuple[str, Any] | None = None
        if self.is_main:
            try:
                outcome = ("ok", fn())
            except FtError as exc:
                outcome = ("error", exc)
        outcome = self.broadcast_object(outcome)
        if outcome[0] == "error":
            raise _shared(outcome[1])
        return outcome[1]

    def agree(self, fn: Callable[[], T]) -> T:
        """Every rank runs ``fn``; if it raises :class:`FtError` on any rank,
        every rank raises it (the first failing rank's, naming that rank)."""
        if not self.enabled:
            return fn()
        error = None
        result = None
        try:
            result = fn()
        except FtError as exc:
            error = exc
        errors = self.all_gather_object(error)
        for rank, exc in enumerate(errors):
            if exc is not None:
                raise _shared(exc, None if all(e is not None for e in errors) else rank)
        return result

    # -- tensors (over the main group, on the training device) ---------------------

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """In-place sum (or ``"max"``) of ``tensor`` over ranks; returns it."""
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
        return tensor

    def broadcast_tensors(self, tensors: list[torch.Tensor], src: int = 0) -> None:
        """Overwrite ``tensors`` on every rank with rank ``src``'s values."""
        if self.enabled:
            for t in tensors:
                dist.broadcast(t, src=src)

    @contextlib.contextmanager
    def local_main_first(self) -> Iterator[None]:
        """Local rank 0 of each node runs the block first, then the others:
        for work that fills an on-disk cache (converting weights, decoding a
        corpus) so that it is done once per node and read by the rest."""
        if self.enabled and self.local_rank != 0:
            self.barrier()
        try:
            yield
        finally:
            if self.enabled and self.local_rank == 0:
                self.barrier()

    def shutdown(self) -> None:
        """Leave the process group if ftkit joined it."""
        global _CURRENT
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
        if _CURRENT is self:
            _CURRENT = None


def _shared(exc: FtError, rank: int | None = None) -> FtError:
    """The error every rank raises; printed once (by rank 0) when it is the same everywhere."""
    if rank is not None:
        exc = FtError(exc.message, where=f"rank {rank}" + (f": {exc.where}" if exc.where else ""), hint=exc.hint)
    exc.all_ranks = True
    return exc


def launched() -> bool:
    """Whether a launcher (torchrun, ``ft run --nproc-per-node``) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def get_distributed(device_type: str | None = None, timeout_s: float | None = None) -> Distributed:
    """This process's :class:`Distributed`, joining the process group once.

    ``device_type`` picks the backend (``"cuda"``: NCCL, else gloo) when this
    call is the one that joins. A group the embedding program already
    initialised is used as it is (and left to that program to destroy).
    """
    global _CURRENT
    if _CURRENT is not None:
        return _CURRENT
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not dist.is_initialized():
        _CURRENT = Distributed()
        return _CURRENT
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" and torch.cuda.is_available() else "gloo"
        kwargs: dict[str, Any] = {"backend": backend}
        if timeout_s:
            kwargs["timeout"] = timedelta(seconds=timeout_s)
        if backend == "nccl":
            kwargs["device_id"] = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(**kwargs)
        owns = True
    backend = dist.get_backend()
    control = dist.new_group(backend="gloo") if backend != "gloo" else None
    _CURRENT = Distributed(world_size=dist.get_world_size(), rank=dist.get_rank(),
                           local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                           local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
                           backend=backend, control=control, owns_group=owns)
    return _CURRENT


def shutdown() -> None:
    """Leave the process group ftkit joined (the ``ft`` command does this at
    exit; an embedding program calls it when it is done with ftkit)."""
    if _CURRENT is not None:
        _CURRENT.shutdown()


def end_worker(code: int) -> NoReturn:
    """End a launched worker process with ``code``, skipping C++ teardown.

    Leaves the process group, runs the ``atexit`` handlers (loggers, study
    storage, logging) and flushes the standard streams, then exits at once
    (``os._exit``) instead of through interpreter finalisation. At
    finalisation, gloo's threads and the objects that still hold a process
    group can be torn down in an order that aborts the process
    ("terminate called without an active exception", SIGABRT) after all its
    work is done, now and then: the launcher then reports a finished run as
    failed. ``ft`` calls this at the end of every worker that a launcher
    started; an embedding program may call it at its own end.
    """
    try:
        shutdown()
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
