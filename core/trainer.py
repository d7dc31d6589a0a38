"""One trainer for every domain, on one CPU or many GPUs.

It trains any ``nn.Module`` on ``(inputs, target)`` batches. With an
:class:`ft.FtModel` it takes the loss and metrics from the head; a bare module
needs ``loss_fn`` (and optionally ``evaluator``). Every speed knob is a plain
line in :meth:`Trainer._step` (autocast, ``no_sync`` while accumulating,
``non_blocking`` copies, ``set_to_none``), and the effective settings are
printed when training starts.

Under ``torchrun`` the ranks are one run: the same seeded model on every
rank, one seeded data order sharded across them, training figures summed
over ranks, evaluation sharded and merged exactly, and every decision to
stop (epochs, ``max_steps``, ``time_limit``, early stopping, Ctrl-C) taken
once and shared, so all ranks stop at the same step.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ._registry import Registry
from .contracts import HEAD_GROUP, Evaluator, batch_size_of, move_to
from .data import make_loader, resolve_num_workers
from .distributed import Distributed, get_distributed
from .evaluation import evaluate_batches
from .events import Events
from .freezing import FreezeStrategy
from .meters import EpochMeter
from .monitor import Monitor
from .nonfinite import NonfiniteSteps
from .parallel import all_reduce_gradients, resolve_device, resolve_precision
from .progress import Progress as ProgressBar
from .recipe import OptimSection, TrainSection
from .rundir import RunDirectory
from .stopping import StopCheck, StopRequest, time_limit_note
from .sync_batchnorm import sync_batch_norm
from .trainer_setup import _TrainerSetup, seed_everything  # noqa: F401 (ft.trainer.seed_everything)
from .trainer_state import _TrainerState


@dataclass
class RunInfo:
    """What lifecycle hooks receive as ``run``."""

    recipe: Any
    run_dir: Path | None
    model: nn.Module
    device: torch.device
    precision: str
    trainer: "Trainer"


@dataclass
class FitResult:
    """The outcome of :meth:`Trainer.fit`."""

    history: list[dict]
    monitor: str
    best_epoch: int | None
    best_value: float | None
    stopped: str
    steps: int
    train_seconds: float
    settings: dict = field(default_factory=dict)
    skipped_steps: int = 0
    #: what ``ft_run_end`` received (empty while the run was interrupted)
    summary: dict = field(default_factory=dict)
    #: ``train.epochs``
    epochs_planned: int = 0
    #: whole epochs trained (``len(history)`` also counts an epoch a stop cut short)
    epochs_completed: int = 0
    #: "stopped by time_limit after 5 of 20 epochs: this is not the recipe's result" when
    #: ``time_limit`` cut the run short (see :func:`ft.stopping.time_limit_note`), else None
    note: str | None = None

    def to_summary(self) -> dict:
        """A bare trainer's run summary: the last epoch's figures by split
        (``{"train": {"loss": ...}, "val": {...}}``) and how training went;
        the keys are those of ``ft.run``'s summary that a trainer knows."""
        last = self.history[-1] if self.history else {}
        metrics: dict[str, dict[str, float]] = {}
        for key, value in last.items():
            split, _, name = key.partition("_")
            if split in ("train", "val") and name:
                metrics.setdefault(split, {})[name] = value
        return {"metrics": metrics, "best_epoch": self.best_epoch, "monitor": self.monitor,
                "best_value": self.best_value, "stopped": self.stopped, "epochs_run": len(self.history),
                "epochs_completed": self.epochs_completed, "epochs_planned": self.epochs_planned,
                "note": self.note, "steps": self.steps, "skipped_steps": self.skipped_steps,
                "train_seconds": round(self.train_seconds, 3), "settings": self.settings}


class Trainer(_TrainerState, _TrainerSetup):
    """Fit, evaluate, checkpoint and resume; GPU when present, CPU otherwise.

    ``train_data``/``val_data`` are DataLoaders or Datasets (a Dataset gets a
    resumable, seeded loader, sharded across ranks under DDP). ``train``/
    ``optim`` are the recipe sections (objects or dicts). ``callbacks`` are
    objects with any of the lifecycle hook methods (``ft_run_start``,
    ``ft_epoch_end``, ...); :meth:`fit` fires each event to the plugins of
    ``registry`` (by default the process-wide one: ``ft.register_plugin``
    and the installed plugins) and then to the callbacks, in the order
    :mod:`ft.events` describes. A callback method named like a hook that is
    not one is an :class:`FtError` here. ``dist`` is this process's place in
    a multi-rank run (by default taken from the launcher's environment).
    """

    def __init__(self, model: nn.Module, train_data: DataLoader | Dataset, val_data: DataLoader | Dataset | None = None,
                 *, train: TrainSection | dict | None = None, optim: OptimSection | dict | None = None,
                 strategy: FreezeStrategy | None = None, loss_fn: Callable | None = None,
                 evaluator: Callable | None = None, collate: Callable | None = None,
                 run_dir: str | Path | RunDirectory | None = None,
                 callbacks: Iterable[Any] = (), recipe: Any = None, data: Any = None, quiet: bool = False,
                 dist: Distributed | None = None, registry: Registry | None = None):
        self.cfg = train if isinstance(train, TrainSection) else TrainSection(**(train or {}))
        self.optim_cfg = optim if isinstance(optim, OptimSection) else OptimSection(**(optim or {}))
        self.model = model
        self.strategy = strategy or FreezeStrategy()
        self.loss_fn = loss_fn or getattr(model, "loss", None)
        if self.loss_fn is None:
            raise TypeError("Trainer needs loss_fn=... for a model without a .loss(outputs, targets) method")
        self.make_evaluator = evaluator or getattr(model, "evaluator", None)
        self.collate = collate
        self.run: RunDirectory | None = None  # the run directory's one writer (known once dist is)
        self._opens_run = bool(run_dir) and not isinstance(run_dir, RunDirectory)  # a path: fit() opens it
        self.events = Events(callbacks, registry)  # refuses a misnamed callback method before anything runs
        self.callbacks = self.events.callbacks
        self.recipe = recipe
        self.data = data
        self.quiet = quiet
        self._train_data, self._val_data = train_data, val_data

        self.device = resolve_device(self.cfg.device)
        self.dist = dist or get_distributed(self.device.type)
        if isinstance(run_dir, RunDirectory):
            self.run = run_dir
        elif run_dir:
            self.run = RunDirectory(run_dir, main=self.dist.is_main)
        self.world_size, self.rank = self.dist.world_size, self.dist.rank
        self.precision = resolve_precision(self.cfg.precision, self.device)
        self.float_dtype = torch.float64 if self.precision == "fp64" else None  # model, inputs and targets
        self.num_workers = resolve_num_workers(self.cfg.num_workers, self.device, self.dist.local_world_size)
        self.sharded = self.dist.enabled and self.cfg.distributed == "fsdp"
        self.step = 0
        self.epoch = 0
        self.history: list[dict] = []
        self.monitor: Monitor | None = None  # the metric behind best/ and early stopping (known after setup)
        self.info: RunInfo | None = None
        self.stop_request = StopRequest()
        self.stop_check = StopCheck(self.dist, self.stop_request)
        self._caching_now = False
        self._cached_loaders: dict[str, DataLoader] = {}
        self._epoch_sums: dict = {}  # this rank's running train-loss sums when an epoch stopped
        self._resumed: dict = {}  # the same, read back from a mid-epoch checkpoint
        self._setup_done = False
        self.nonfinite = NonfiniteSteps(self.cfg.max_nonfinite_steps)
        self._step_events = False  # whether anyone receives ft_step_end (known when fit starts)
        self._step_mark = (0.0, 0)  # (loss sum, examples) of this epoch at the last ft_step_end
        self._stop_asked: str | None = None  # request_stop's reason, acted on after the epoch's events

    def request_stop(self, reason: str) -> None:
        """Stop once the current epoch's events have fired, as if the epochs
        had run out: the best weights are loaded and the run ends with
        ``FitResult.stopped == reason`` (a sweep's pruner calls this from
        ``ft_epoch_end``). Under several ranks rank 0's request counts."""
        self._stop_asked = reason

    @property
    def run_dir(self) -> Path | None:
        """Where the run directory is (None: the trainer writes none)."""
        return self.run.path if self.run else None

    # -- steps for tools (ft lr-find) ----------------------------------------

    def train_windows(self, epoch: int = 0, quiet: bool = True) -> Iterable[list]:
        """The training batches of ``epoch``, grouped as one optimizer step
        takes them (``train.grad_accum`` micro-batches), from the loader
        :meth:`fit` would use (cached features while the strategy keeps the
        backbone frozen). For tools that drive steps themselves, with
        :meth:`train_step`."""
        self.setup()
        bar = ProgressBar(False, self.cfg.log_every, quiet=quiet or not self.dist.is_main)
        batches = iter(self._start_epoch(epoch, 0, bar))
        while window := list(islice(batches, self.cfg.grad_accum)):
            yield window

    def train_step(self, window: list, *, hold_step: bool = False) -> float | None:
        """One optimizer step over ``window`` (from :meth:`train_windows`) at
        the optimizer groups' current learning rates, exactly as :meth:`fit`
        takes it (autocast, accumulation, clipping, the strategy's extra
        loss). Returns the mean loss over every rank's examples, or None for
        a skipped non-finite step. ``hold_step``: the step count, and with it
        the strategy's schedule (which groups move, which it has unfrozen),
        stays where it is: a range test takes every step as the first."""
        self.setup()
        if hold_step:
            self.step -= 1  # _step counts the step it takes
        loss_sum = self._step(window)
        n = float(sum(batch_size_of(t) for _, t in window))
        totals = torch.tensor([float(loss_sum) if loss_sum is not None else float("nan"), n], dtype=torch.float64,
                              device=self.device)
        loss, count = self.dist.all_reduce(totals).tolist()
        return loss / count if loss_sum is not None and count else None

    # -- the step -----------------------------------------------------------

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _prepare_inputs(self, inputs: Any) -> Any:
        inputs = move_to(inputs, self.device, non_blocking=True, float_dtype=self.float_dtype)
        if self.cfg.channels_last and isinstance(inputs, torch.Tensor) and inputs.ndim == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs

    def _prepare_batch(self, inputs: Any, targets: Any) -> tuple[Any, Any]:
        return self._prepare_inputs(inputs), move_to(targets, self.device, True, self.float_dtype)

    def _batch_norm(self) -> contextlib.AbstractContextManager:
        """With ``train.sync_batchnorm`` under DDP: BatchNorm over the global batch."""
        return sync_batch_norm() if self.sync_bn else contextlib.nullcontext()

    def _no_sync(self, last: bool) -> contextlib.AbstractContextManager:
        """Skip the gradient all-reduce on all but the last micro-batch of a step."""
        if not self.dist.enabled or self._caching_now:
            return contextlib.nullcontext()
        if self.sharded:
            self.model.set_requires_gradient_sync(last)
            return contextlib.nullcontext()
        return contextlib.nullcontext() if last else self.forward_model.no_sync()

    def _step(self, window: list) -> torch.Tensor:
        """One optimizer step over ``window`` micro-batches.

        Each micro-batch's mean loss is weighted by its share of the window's
        examples, so accumulation equals one large batch even when the last
        micro-batch is short. Returns the summed (unweighted) loss x count.
        """
        counts = [batch_size_of(targets) for _, targets in window]
        n_total = sum(counts)
        loss_sum = torch.zeros((), device=self.device)
        for i, ((inputs, targets), n) in enumerate(zip(window, counts)):
            inputs, targets = self._prepare_batch(inputs, targets)
            # sync BatchNorm spans the backward too: a checkpointed block recomputes its forward there
            with self._no_sync(last=i == len(window) - 1), self._batch_norm():
                with self._autocast():
                    outputs = self._forward(inputs)
                    loss = self.loss_fn(outputs, targets)
                extra = self.strategy.extra_loss(self.model)
                if extra is not None and hasattr(extra, "full_tensor"):  # FSDP: a sum over sharded weights
                    extra = extra.full_tensor()
                weighted = loss * (n / n_total) if extra is None else (loss + extra) * (n / n_total)
                if self.scaler is not None:
                    self.scaler.scale(weighted).backward()
                else:
                    weighted.backward()
            loss_sum += loss.detach().float() * n
        if self._caching_now and self.dist.enabled:  # the head ran outside DDP: average its gradients here
            all_reduce_gradients(self.trainable, self.dist)
        if self.scaler is not None and self.cfg.clip_grad_norm:
            self.scaler.unscale_(self.optimizer)
        # groups held at LR 0 (not yet unfrozen) must not shrink the others' updates
        moving = [p for g in self.optimizer.param_groups if self._mults.get(g["ft_group"], 1.0) > 0
                  for p in g["params"]]
        norm = torch.nn.utils.clip_grad_norm_(moving, self.cfg.clip_grad_norm) if self.cfg.clip_grad_norm else None
        # the gradients are the same on every rank (all-reduced), so every rank skips the same steps;
        # with a GradScaler (fp16) skipping inf steps is the scaler's own business
        finite = self.scaler is not None or _finite_norm(moving, norm)
        if self.nonfinite.record(finite):
            raise self.nonfinite.error(self.epoch + 1, self.step + 1, self.optim_cfg.lr,
                                       str(self.run_dir) if self.run_dir else "training")
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        elif finite:  # a non-finite step is skipped: no update
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        if self.ema is not None and finite:
            self.ema.update(self.step)
        self._reset_newly_unfrozen()
        return loss_sum if finite else None

    def _reset_newly_unfrozen(self) -> None:
        """A group whose LR multiplier leaves 0 starts with fresh optimizer
        state, as if it had been frozen (its moments saw gradients meanwhile)."""
        now = self._group_multipliers()
        opened = {name for name, m in now.items() if m > 0 and self._mults.get(name, 1.0) == 0}
        if opened:
            for group in self.optimizer.param_groups:
                if group["ft_group"] in opened:
                    for p in group["params"]:
                        self.optimizer.state.pop(p, None)
        self._mults = now

    def _tokens_in(self, window: list) -> int | None:
        """Real tokens in a window of CPU batches, where the backbone counts them."""
        if self._caching_now:
            return None
        count = getattr(getattr(self.model, "backbone", None), "tokens_in", None)
        if count is None:
            return None
        tokens = [count(inputs) for inputs, _ in window]
        return None if any(t is None for t in tokens) else sum(tokens)

    # -- fit ----------------------------------------------------------------

    def fit(self, resume: bool | str | Path = False, *,
            summary: Callable[[FitResult], dict] | None = None) -> FitResult:
        """Train until ``epochs``, ``max_steps``, ``time_limit``, early
        stopping or Ctrl-C (``stopped == "interrupted"``, after a checkpoint).

        ``resume=True`` continues from the run directory's latest checkpoint
        (on CPU the result equals an unbroken run's, weights and metrics).
        A ``run_dir`` given as a path is created, locked and repaired here.

        Every lifecycle event is fired here (see :mod:`ft.events`), the last
        one ``ft_run_end(run, summary)`` after training unless the run was
        interrupted. ``summary`` makes that summary: called on every rank
        with the :class:`FitResult` once training ended (``ft.run`` passes
        one that loads the best weights, evaluates and writes the run's
        files); without it the summary is :meth:`FitResult.to_summary`.
        Either way it is kept as ``FitResult.summary``.
        """
        opened_here = self._opens_run
        if opened_here:
            self.dist.decide(lambda: self.run.open(fresh=False) and None)
        try:
            return self._fit(resume, summary)
        finally:
            if opened_here:
                self.run.close()

    def _fit(self, resume: bool | str | Path, summary: Callable[[FitResult], dict] | None) -> FitResult:
        self.setup()
        start_epoch, start_batch, elapsed_before = 0, 0, 0.0
        if resume:
            start_epoch, start_batch, elapsed_before = self._restore(resume)
        main = self.dist.is_main
        log = self.run.metrics_log() if self.run else None
        if log:  # a resumed run replays what followed its checkpoint; a fresh one starts a new log
            log.truncate_after(start_epoch if resume else 0)
        bar = ProgressBar(self.cfg.progress, self.cfg.log_every, quiet=self.quiet or not main)
        self.info = RunInfo(self.recipe, self.run_dir, self.model, self.device, self.precision, self)
        self._announce(bar, resume, start_epoch, start_batch)
        self._emit("ft_run_start", run=self.info)
        self._step_events = self.dist.broadcast_object(self.events.listens("ft_step_end"))
        clock = time.perf_counter()
        stopped = "epochs"
        completed, partial_steps = start_epoch, 0  # whole epochs, and steps into the next when a stop cut it
        with self.stop_request:
            for epoch in range(start_epoch, self.cfg.epochs):
                self.epoch = epoch
                elapsed = lambda: round(elapsed_before + time.perf_counter() - clock, 3)  # noqa: E731
                metrics, batch_index, stopped = self._train_epoch(epoch, start_batch, bar, elapsed)
                start_batch = 0
                finished_epoch = batch_index >= self.batches_per_epoch
                completed = epoch + 1 if finished_epoch else epoch
                partial_steps = 0 if finished_epoch else -(-batch_index // self.cfg.grad_accum)
                checkpoint = self.run_dir is not None and self.cfg.checkpoint
                if not finished_epoch and checkpoint:  # before the partial epoch is scored: a resume replays it
                    self._save_checkpoint(epoch, batch_index, elapsed())
                if stopped == "interrupted" and not finished_epoch:
                    break
                with self._averaged():
                    if self.val_loader is not None:
                        metrics.update(self.evaluate(self.val_loader, "val"))
                    metrics["elapsed"] = elapsed()
                    self.history.append(metrics)
                    bar.end_epoch(metrics)
                    improved = self.monitor.update(metrics)
                    if log:
                        log.write(metrics)
                    if improved and self.run_dir:
                        self._save_best(metrics)
                if finished_epoch and checkpoint:  # the live weights: training resumes from them
                    self._save_checkpoint(epoch + 1, 0, metrics["elapsed"])
                with self._averaged():
                    self._emit("ft_epoch_end", run=self.info, epoch=epoch + 1, metrics=metrics)
                if stopped == "epochs" and self.cfg.patience and self.dist.broadcast_object(
                        self.monitor.bad_epochs >= self.cfg.patience):
                    stopped = "early_stopping"
                asked = self.dist.broadcast_object(self._stop_asked)
                if stopped == "epochs" and asked:
                    stopped = asked
                if stopped != "epochs":
                    break
        if stopped == "time_limit" and completed == self.cfg.epochs:
            stopped = "epochs"  # the limit fell on the last step: nothing was cut, this is the recipe's result
        self._caching_now = False
        self._forward = self.forward_model
        if self.ema is not None:
            self.ema.copy_to_model()
        seconds = elapsed_before + time.perf_counter() - clock
        best = self.monitor.best
        result = FitResult(self.history, self.monitor.name, best["epoch"], best["value"], stopped, self.step,
                           seconds, self.settings(), self.nonfinite.skipped, epochs_planned=self.cfg.epochs,
                           epochs_completed=completed,
                           note=time_limit_note(stopped, completed, self.cfg.epochs, partial_steps,
                                                self.steps_per_epoch))
        if stopped != "interrupted":  # an interrupted run is not over: it resumes, and ends then
            result.summary = summary(result) if summary is not None else result.to_summary()
            self._emit("ft_run_end", run=self.info, summary=result.summary)
        return result

    def _train_epoch(self, epoch: int, start_batch: int, bar: ProgressBar,
                     elapsed: Callable[[], float]) -> tuple[dict, int, str]:
        """One epoch (or what is left of it): the train figures, the batch
        index reached and why it ended ("epochs" if it simply ran out)."""
        loader = self._start_epoch(epoch, start_batch, bar)
        bar.start_epoch(epoch + 1, self.cfg.epochs, self.steps_per_epoch)
        meter = EpochMeter(self.device)
        # a resumed half-epoch carries on the sums its first part left (so train_loss covers the whole epoch)
        loss_total = torch.as_tensor(self._resumed.get("loss_total", 0.0), dtype=torch.float32).to(self.device)
        seen = self._resumed.get("seen", 0)
        self._resumed = {}
        self._step_mark = (loss_total.item(), seen)
        batch_index = start_batch
        stopped = "epochs"
        batches = iter(loader)
        while True:
            t0 = time.perf_counter()
            window = list(islice(batches, self.cfg.grad_accum))
            meter.waited(time.perf_counter() - t0)
            if not window:
                break
            n = sum(batch_size_of(t) for _, t in window)
            meter.count(n, self._tokens_in(window))
            step_loss = self._step(window)
            if step_loss is not None:  # a skipped (non-finite) step adds nothing to the epoch's loss
                loss_total += step_loss
                seen += n
            batch_index += len(window)
            done = -(-batch_index // self.cfg.grad_accum)
            if bar.needs_loss(done):
                bar.update(done, (loss_total / max(1, seen)).item(), self._shown_lr())
            if self._step_events and self.step % self.cfg.log_every == 0:
                self._step_end(loss_total, seen, epoch + done / self.steps_per_epoch)
            stopped = self.stop_check.reason(self.step, self.cfg.max_steps, elapsed(), self.cfg.time_limit)
            if stopped != "epochs":
                break
        self._epoch_sums = {"loss_total": loss_total.detach().cpu(), "seen": seen}
        # the loss over every rank's examples, as one process with the whole batch would report it
        totals = self.dist.all_reduce(torch.stack([loss_total.double(), torch.tensor(float(seen),
                                                                                    device=self.device).double()]))
        metrics = {"epoch": epoch + 1, "step": self.step,
                   "train_loss": (totals[0] / totals[1]).item() if totals[1] > 0 else float("nan"),
                   "lr": self._shown_lr(), **meter.figures(self.dist)}
        if self.nonfinite.skipped:
            metrics["skipped_steps"] = self.nonfinite.skipped
        return metrics, batch_index, stopped

    def _step_end(self, loss_total: torch.Tensor, seen: int, epoch: float) -> None:
        """Fire ``ft_step_end`` with the loss since the last one, over every rank's examples."""
        total = loss_total.item()
        loss, count = total - self._step_mark[0], seen - self._step_mark[1]
        self._step_mark = (total, seen)
        if self.dist.enabled:
            loss, count = self.dist.all_reduce(torch.tensor([loss, float(count)], dtype=torch.float64,
                                                            device=self.device)).tolist()
        metrics = {"step": self.step, "epoch": round(epoch, 4),
                   "train_loss": loss / count if count else float("nan"), "lr": self._shown_lr()}
        for group, lr in zip(self.optimizer.param_groups, self.scheduler.get_last_lr()):
            metrics[f"lr_{group['ft_group']}"] = lr
        self._emit("ft_step_end", run=self.info, step=self.step, metrics=metrics)

    def _averaged(self) -> contextlib.AbstractContextManager:
        """With ``train.ema_decay``: the averaged weights in place (validation, best/, epoch-end hooks)."""
        return self.ema.applied() if self.ema is not None else contextlib.nullcontext()

    def _shown_lr(self) -> float:
        """The head's current LR (the bottom group's reads 0 while frozen)."""
        lrs = self.scheduler.get_last_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            if group["ft_group"] == HEAD_GROUP:
                return lr
        return lrs[-1]

    # -- evaluation ---------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, loader: DataLoader | Dataset, prefix: str = "val", *,
                 evaluator: Evaluator | None = None) -> dict[str, float]:
        """Loss and task metrics over ``loader``, keys prefixed ``{prefix}_``.

        A Dataset (or the trainer's own loaders) is sharded across ranks and
        the ranks' results merged, so every rank returns the metrics of the
        whole split, equal to one process's. A DataLoader passed in is
        evaluated whole on every rank.

        ``evaluator``: a fresh one to fill instead of the model's own new
        one; afterwards it holds the whole split's state (merged over the
        ranks), for what else it tells, e.g. its :meth:`ft.Evaluator.report`.
        """
        self.setup()
        if not isinstance(loader, DataLoader):
            loader = self._loader(loader, train=False)
        was_training = self.model.training
        self.model.eval()
        forward = self.model
        if self._caching_now:
            pairs = self.feature_cache.get(prefix, loader, self.model.forward_features, self.device,
                                           self._prepare_inputs)
            if prefix not in self._cached_loaders:
                self._cached_loaders[prefix] = make_loader(
                    pairs, batch_size=self.cfg.eval_batch_size or self.cfg.batch_size, train=False,
                    rank=self.rank, world_size=self.world_size, shard_eval=self.shard_eval)
            loader, forward = self._cached_loaders[prefix], self.model.forward_head
        if evaluator is None and self.make_evaluator:
            evaluator = self.make_evaluator()
        out = evaluate_batches(loader, forward, self.loss_fn, evaluator, self._prepare_batch, self._autocast,
                               self.dist)
        if was_training:  # back to the strategy's modes (a frozen backbone's BatchNorm stays in eval)
            self.strategy.set_train_mode(self.model, self.epoch)
        return {f"{prefix}_{k}": float(v) for k, v in out.items()}

    def _emit(self, hook: str, **kwargs: Any) -> None:
        """Fire a lifecycle event (plugins, then callbacks: :class:`ft.events.Events`)
        on rank 0 (every rank calls this). A plugin or callback that fails
        stops every rank with rank 0's error, never leaving the others
        waiting at the next collective."""
        self.dist.decide(lambda: self.events.fire(hook, self.dist.enabled, **kwargs))


def _finite_norm(params: list[torch.Tensor], norm: torch.Tensor | None) -> bool:
    """Whether the gradients of ``params`` are finite (``norm``: their total
    norm when clipping already computed it; a sharded DTensor norm is gathered)."""
    if norm is None:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    return bool(torch.isfinite(norm.full_tensor() if hasattr(norm, "full_tensor") else norm))
