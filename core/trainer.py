"""One trainer for every domain.

It trains any ``nn.Module`` on ``(inputs, target)`` batches. With an
:class:`ft.FtModel` it takes the loss and metrics from the head; a bare module
needs ``loss_fn`` (and optionally ``evaluator``). Every speed knob is a plain
line in :meth:`Trainer._step` (autocast, ``no_sync`` while accumulating,
``non_blocking`` copies, ``set_to_none``), and the effective settings are
printed when training starts.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .checkpoint import read_checkpoint_dir, save_checkpoint_dir, save_weights, load_weights, write_json_atomic
from .contracts import batch_size_of, move_to
from .data import make_loader
from .ema import WeightEMA
from .feature_cache import FeatureCache
from .errors import FtError
from .freezing import FreezeStrategy, Progress, apply_strategy, parameter_table
from .optim import build_optimizer, build_scheduler
from .progress import Progress as ProgressBar
from .recipe import OptimSection, TrainSection
from .rundir import MetricsLog

HIGHER_IS_BETTER = ("accuracy", "f1", "ndcg", "recall", "hit", "precision", "auc", "map", "mrr", "r2", "exact_match")


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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if "LOCAL_RANK" in os.environ and torch.cuda.is_available():
            return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FtError(f"train.device = {name!r} but CUDA is not available", hint="use train.device = \"auto\" or \"cpu\"")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    """auto: bf16 on CUDA that supports it, fp16 on older CUDA, fp32 on CPU
    (bf16 autocast was not reliably faster on the CPUs we measured)."""
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if name == "fp16" and device.type != "cuda":
        raise FtError("train.precision = \"fp16\" needs a CUDA device", hint="use \"bf16\" or \"fp32\" on CPU")
    return name


def metric_mode(name: str, default_metric: str | None = None, default_mode: str = "min") -> str:
    bare = name.split("_", 1)[1] if name.startswith(("val_", "train_", "test_")) else name
    if default_metric and bare == default_metric:
        return default_mode
    return "max" if any(word in bare for word in HIGHER_IS_BETTER) else "min"


class Trainer:
    """Fit, evaluate, checkpoint and resume; GPU when present, CPU otherwise.

    ``train_data``/``val_data`` are DataLoaders or Datasets (a Dataset gets a
    resumable, seeded loader). ``train``/``optim`` are the recipe sections
    (objects or dicts). ``callbacks`` are objects with any of the lifecycle
    hook methods (``ft_run_start``, ``ft_epoch_end``, ...).
    """

    def __init__(self, model: nn.Module, train_data: DataLoader | Dataset, val_data: DataLoader | Dataset | None = None,
                 *, train: TrainSection | dict | None = None, optim: OptimSection | dict | None = None,
                 strategy: FreezeStrategy | None = None, loss_fn: Callable | None = None,
                 evaluator: Callable | None = None, collate: Callable | None = None, run_dir: str | Path | None = None,
                 callbacks: Iterable[Any] = (), recipe: Any = None, data: Any = None, quiet: bool = False):
        self.cfg = train if isinstance(train, TrainSection) else TrainSection(**(train or {}))
        self.optim_cfg = optim if isinstance(optim, OptimSection) else OptimSection(**(optim or {}))
        self.model = model
        self.strategy = strategy or FreezeStrategy()
        self.loss_fn = loss_fn or getattr(model, "loss", None)
        if self.loss_fn is None:
            raise TypeError("Trainer needs loss_fn=... for a model without a .loss(outputs, targets) method")
        self.make_evaluator = evaluator or getattr(model, "evaluator", None)
        self.collate = collate
        self.run_dir = Path(run_dir) if run_dir else None
        self.callbacks = list(callbacks)
        self.recipe = recipe
        self.data = data
        self.quiet = quiet
        self._train_data, self._val_data = train_data, val_data

        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = resolve_device(self.cfg.device)
        self.precision = resolve_precision(self.cfg.precision, self.device)
        self.step = 0
        self.history: list[dict] = []
        self.best: dict = {"value": None, "epoch": None}
        self.bad_epochs = 0
        self._setup_done = False

    # -- setup --------------------------------------------------------------

    def _loader(self, data: Any, train: bool) -> DataLoader | None:
        if data is None or isinstance(data, DataLoader):
            return data
        batch = self.cfg.batch_size if train else (self.cfg.eval_batch_size or self.cfg.batch_size)
        ws, rank = (self.world_size, self.rank) if train else (1, 0)
        # the data's batcher groups the training split (its indices and lengths); evaluation keeps dataset order
        batcher = getattr(self.data, "batcher", None) if train else None
        return make_loader(data, batch_size=batch, train=train, seed=self.cfg.seed, collate=self.collate,
                           num_workers=self.cfg.num_workers, rank=rank, world_size=ws,
                           pin_memory=self.device.type == "cuda", batcher=batcher)

    def setup(self) -> None:
        """Seed, place the model, apply the strategy, build optimizer and schedule."""
        if self._setup_done:
            return
        seed_everything(self.cfg.seed)
        if self.world_size > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        apply_strategy(self.strategy, self.model)
        self.model.to(self.device)
        if self.cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.strategy.prepare(self.model, self.data, self.device)
        self.train_loader = self._loader(self._train_data, train=True)
        self.val_loader = self._loader(self._val_data, train=False)
        self.groups = self.strategy.param_groups(self.model)
        self.optimizer, self.optim_impl = build_optimizer(self.groups, self.optim_cfg, self.device)
        self.batches_per_epoch = len(self.train_loader)
        self.steps_per_epoch = -(-self.batches_per_epoch // self.cfg.grad_accum)
        total = self.steps_per_epoch * self.cfg.epochs
        self.total_steps = min(total, self.cfg.max_steps) if self.cfg.max_steps else total
        self.scheduler = build_scheduler(self.optimizer, self.optim_cfg, self.total_steps, self.strategy,
                                         self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        self.forward_model: nn.Module = self.model
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if self.cfg.compile:
            self.forward_model = torch.compile(self.forward_model)
        self.trainable = [p for g in self.groups for p in g.params if p.requires_grad]
        self.ema = (WeightEMA(self.model, [p for g in self.groups for p in g.params], self.cfg.ema_decay)
                    if self.cfg.ema_decay else None)
        head = getattr(self.model, "head", None)
        default_metric = getattr(head, "default_metric", None)
        if self.cfg.monitor:
            self.monitor = self.cfg.monitor
        elif self.val_loader is not None and default_metric:
            self.monitor = f"val_{default_metric}"
        else:
            self.monitor = "val_loss" if self.val_loader is not None else "train_loss"
        mode = self.cfg.monitor_mode
        self.mode = mode if mode != "auto" else metric_mode(self.monitor, default_metric, getattr(head, "default_mode", "min"))
        self._mults = self._group_multipliers()
        self.feature_cache, self.cache_note = self._plan_feature_cache()
        self._cached_loaders: dict[str, DataLoader] = {}
        self._caching_now = False
        self._forward = self.forward_model
        self._setup_done = True

    def _plan_feature_cache(self) -> tuple[FeatureCache | None, str]:
        """Cache features when a frozen backbone meets unaugmented inputs."""
        setting = self.cfg.cache_features
        if setting is False:
            return None, "off (train.cache_features = false)"
        if not (hasattr(self.model, "forward_head") and hasattr(self.model, "backbone")):
            return None, "off (model has no backbone/head split)"
        if self.world_size > 1 or self.cfg.compile:
            return None, "off (not used with DDP or compile)"
        augmented = getattr(self.data, "train_augmented", None)
        if augmented is None and setting != True:  # a bare Trainer cannot know; the user may assert it
            return None, "off (unknown whether training inputs are augmented; set train.cache_features = true)"
        if augmented:
            return None, "off (training inputs are randomly augmented)"
        directory = self.run_dir / "cache" if self.run_dir and self.cfg.feature_cache_on_disk else None
        cache = FeatureCache(self.model.backbone, getattr(self.data, "fingerprint", ""), directory)
        return cache, "on while the backbone is frozen"

    def settings(self) -> dict:
        """The effective settings, as printed at start and saved in the summary."""
        eff = self.cfg.batch_size * self.cfg.grad_accum * self.world_size
        return {
            "device": str(self.device), "precision": self.precision, "world_size": self.world_size,
            "batch": f"{self.cfg.batch_size} x accum {self.cfg.grad_accum} x {self.world_size} rank(s) = {eff}",
            "optimizer": f"{self.optim_cfg.name} ({self.optim_impl}) lr {self.optim_cfg.lr:g} "
                         f"wd {self.optim_cfg.weight_decay:g}",
            "schedule": f"{self.optim_cfg.schedule}, warmup "
                        f"{self.optim_cfg.warmup_steps or int(self.optim_cfg.warmup_ratio * self.total_steps)} "
                        f"of {self.total_steps} steps",
            "strategy": self.strategy.describe(),
            "channels_last": self.cfg.channels_last, "compile": self.cfg.compile,
            "clip_grad_norm": self.cfg.clip_grad_norm, "ema_decay": self.cfg.ema_decay,
            "monitor": f"{self.monitor} ({self.mode})",
            "feature_cache": self.cache_note,
            "callbacks": [type(c).__name__ for c in self.callbacks],
        }

    def _epoch_loader(self, epoch: int, bar: ProgressBar) -> DataLoader:
        """The loader for ``epoch``; sets the forward function to match."""
        self._caching_now = self.feature_cache is not None and self.strategy.backbone_frozen(epoch)
        if not self._caching_now:
            self._forward = self.forward_model
            return self.train_loader
        self.feature_cache.invalidate_if_changed()
        if not self.feature_cache._store:
            self._cached_loaders.clear()
        if "train" not in self._cached_loaders:
            source = self.train_loader
            # dataset order (no batcher): cached row i must be example i
            ordered = make_loader(source.dataset, batch_size=self.cfg.eval_batch_size or self.cfg.batch_size,
                                  train=False, collate=source.collate_fn, num_workers=self.cfg.num_workers)
            if "train" not in self.feature_cache._store:
                bar.message(f"ft: feature cache: running the frozen backbone once over "
                                  f"{len(source.dataset):,} training examples")
            pairs = self.feature_cache.get("train", ordered, self.model.forward_features, self.device,
                                           self._prepare_inputs)
            # same sampler, seed and batcher as the raw loader: the same batches in the same order
            self._cached_loaders["train"] = make_loader(pairs, batch_size=self.cfg.batch_size, train=True,
                                                        seed=self.cfg.seed, rank=self.rank,
                                                        world_size=self.world_size,
                                                        batcher=getattr(self.data, "batcher", None))
        self._forward = self.model.forward_head
        return self._cached_loaders["train"]

    # -- the step -----------------------------------------------------------

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _prepare_inputs(self, inputs: Any) -> Any:
        inputs = move_to(inputs, self.device, non_blocking=True)
        if self.cfg.channels_last and isinstance(inputs, torch.Tensor) and inputs.ndim == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs

    def _step(self, window: list) -> torch.Tensor:
        """One optimizer step over ``window`` micro-batches.

        Each micro-batch's mean loss is weighted by its share of the window's
        examples, so accumulation equals one large batch even when the last
        micro-batch is short. Returns the summed (unweighted) loss x count.
        """
        counts = [batch_size_of(targets) for _, targets in window]
        n_total = sum(counts)
        loss_sum = torch.zeros((), device=self.device)
        ddp = self.world_size > 1
        for i, ((inputs, targets), n) in enumerate(zip(window, counts)):
            inputs, targets = self._prepare_inputs(inputs), move_to(targets, self.device, non_blocking=True)
            last = i == len(window) - 1
            sync = self.forward_model.no_sync() if ddp and not last else contextlib.nullcontext()
            with sync:
                with self._autocast():
                    outputs = self._forward(inputs)
                    loss = self.loss_fn(outputs, targets)
                extra = self.strategy.extra_loss(self.model)
                weighted = loss * (n / n_total) if extra is None else (loss + extra) * (n / n_total)
                if self.scaler is not None:
                    self.scaler.scale(weighted).backward()
                else:
                    weighted.backward()
            loss_sum += loss.detach().float() * n
        if self.cfg.clip_grad_norm:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            # groups held at LR 0 (not yet unfrozen) must not shrink the others' updates
            moving = [p for g in self.optimizer.param_groups if self._mults.get(g["ft_group"], 1.0) > 0
                      for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(moving, self.cfg.clip_grad_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.step)
        self._reset_newly_unfrozen()
        return loss_sum

    def _group_multipliers(self) -> dict[str, float]:
        progress = Progress(self.step, self.step // max(1, self.steps_per_epoch), self.steps_per_epoch)
        return {g.name: self.strategy.lr_multiplier(g.name, progress) for g in self.groups}

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

    # -- fit ----------------------------------------------------------------

    def fit(self, resume: bool | str | Path = False) -> FitResult:
        """Train until ``epochs``, ``max_steps``, ``time_limit`` or early stopping.

        ``resume=True`` continues from the run directory's latest checkpoint
        (on CPU the result equals an unbroken run's, weights and metrics).
        """
        self.setup()
        main = self.rank == 0
        start_epoch, start_batch, elapsed_before = 0, 0, 0.0
        if resume:
            start_epoch, start_batch, elapsed_before = self._restore(resume)
        log = MetricsLog(self.run_dir / "metrics.jsonl") if self.run_dir and main else None
        if log and resume:
            log.truncate_after(start_epoch)
        bar = ProgressBar(self.cfg.progress, self.cfg.log_every, quiet=self.quiet or not main)
        info = RunInfo(self.recipe, self.run_dir, self.model, self.device, self.precision, self)
        self.info = info
        if main:
            bar.message("ft: " + " | ".join(f"{k} {v}" for k, v in self.settings().items()
                                             if k not in ("strategy", "callbacks")))
            for row in parameter_table(self.model):
                bar.message(f"ft:   {row['group']:<24} trainable {row['trainable']:>11,}  frozen {row['frozen']:>11,}")
            if resume:
                bar.message(f"ft: resumed at epoch {start_epoch + 1}, batch {start_batch}, step {self.step}")
        self._emit("ft_run_start", run=info)
        t_start = time.perf_counter()
        stopped = "epochs"
        for epoch in range(start_epoch, self.cfg.epochs):
            self.epoch = epoch
            self.strategy.set_train_mode(self.model, epoch)
            loader = self._epoch_loader(epoch, bar)
            sampler = loader.batch_sampler if hasattr(loader.batch_sampler, "set_epoch") else loader.sampler
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            batch_index = start_batch
            if start_batch:
                if not hasattr(sampler, "set_start"):
                    raise FtError("cannot resume mid-epoch with this DataLoader",
                                  hint="pass Datasets to ft.Trainer (it builds resumable loaders)")
                sampler.set_start(start_batch)
            start_batch = 0
            bar.start_epoch(epoch + 1, self.cfg.epochs, self.steps_per_epoch)
            loss_total = torch.zeros((), device=self.device)
            seen = 0
            batches = iter(loader)
            while True:
                window = list(islice(batches, self.cfg.grad_accum))
                if not window:
                    break
                loss_total += self._step(window)
                seen += sum(batch_size_of(t) for _, t in window)
                batch_index += len(window)
                done = -(-batch_index // self.cfg.grad_accum)
                if bar.needs_loss(done):
                    bar.update(done, (loss_total / max(1, seen)).item(), self._shown_lr())
                if self.cfg.max_steps and self.step >= self.cfg.max_steps:
                    stopped = "max_steps"
                    break
                if self.cfg.time_limit and elapsed_before + time.perf_counter() - t_start >= self.cfg.time_limit:
                    stopped = "time_limit"
                    break
            finished_epoch = batch_index >= self.batches_per_epoch
            metrics = {"epoch": epoch + 1, "step": self.step,
                       "train_loss": (loss_total / max(1, seen)).item() if seen else float("nan"),
                       "lr": self._shown_lr()}
            with self._averaged():
                if self.val_loader is not None:
                    metrics.update(self.evaluate(self.val_loader, "val"))
                metrics["elapsed"] = round(elapsed_before + time.perf_counter() - t_start, 3)
                self.history.append(metrics)
                bar.end_epoch(metrics)
                improved = self._track_best(metrics)
                if log:
                    log.write(metrics)
                if main and improved and self.run_dir:
                    self._save_best(metrics)
            next_epoch, next_batch = (epoch + 1, 0) if finished_epoch else (epoch, batch_index)
            if main and self.run_dir and self.cfg.checkpoint:  # the live weights: training resumes from them
                self._save_checkpoint(next_epoch, next_batch, metrics["elapsed"])
            with self._averaged():
                self._emit("ft_epoch_end", run=info, epoch=epoch + 1, metrics=metrics)
            if self.cfg.patience and self.bad_epochs >= self.cfg.patience:
                stopped = "early_stopping"
            if stopped != "epochs":
                break
        self._caching_now = False
        self._forward = self.forward_model
        if self.ema is not None:
            self.ema.copy_to_model()
        seconds = elapsed_before + time.perf_counter() - t_start
        return FitResult(self.history, self.monitor, self.best["epoch"], self.best["value"], stopped, self.step,
                         seconds, self.settings())

    def _averaged(self) -> contextlib.AbstractContextManager:
        """With ``train.ema_decay``: the averaged weights in place (validation, best/, epoch-end hooks)."""
        return self.ema.applied() if self.ema is not None else contextlib.nullcontext()

    def _shown_lr(self) -> float:
        """The head's current LR (the bottom group's reads 0 while frozen)."""
        lrs = self.scheduler.get_last_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            if group["ft_group"] == "head":
                return lr
        return lrs[-1]

    def _track_best(self, metrics: dict) -> bool:
        value = metrics.get(self.monitor)
        if value is None or value != value:  # missing or NaN
            return False
        best = self.best["value"]
        better = best is None or (value > best if self.mode == "max" else value < best)
        if better:
            self.best = {"value": value, "epoch": metrics["epoch"]}
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        return better

    # -- evaluation ---------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, loader: DataLoader | Dataset, prefix: str = "val") -> dict[str, float]:
        """Loss and task metrics over ``loader``, keys prefixed ``{prefix}_``."""
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
                self._cached_loaders[prefix] = make_loader(pairs, batch_size=self.cfg.eval_batch_size
                                                           or self.cfg.batch_size, train=False)
            loader, forward = self._cached_loaders[prefix], self.model.forward_head
        evaluator = self.make_evaluator() if self.make_evaluator else None
        loss_sum, count = 0.0, 0
        for inputs, targets in loader:
            inputs, targets = self._prepare_inputs(inputs), move_to(targets, self.device, non_blocking=True)
            with self._autocast():
                outputs = forward(inputs)
                loss = self.loss_fn(outputs, targets)
            n = batch_size_of(targets)
            loss_sum += loss.float().item() * n
            count += n
            if evaluator is not None:
                evaluator.update(outputs.float(), targets)
        if was_training:  # back to the strategy's modes (a frozen backbone's BatchNorm stays in eval)
            self.strategy.set_train_mode(self.model, getattr(self, "epoch", 0))
        out = {"loss": loss_sum / max(1, count)}
        if evaluator is not None:
            out.update(evaluator.compute())
        return {f"{prefix}_{k}": float(v) for k, v in out.items()}

    # -- checkpoints --------------------------------------------------------

    def _save_best(self, metrics: dict) -> None:
        best = self.run_dir / "best"
        tmp = self.run_dir / ".best.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        save_weights(self.model, tmp / "model.safetensors")
        write_json_atomic(tmp / "metrics.json", metrics)
        old = self.run_dir / ".best.old"
        if best.exists():
            os.replace(best, old)
        os.replace(tmp, best)
        if old.exists():
            import shutil

            shutil.rmtree(old)

    def _save_checkpoint(self, epoch: int, batch: int, elapsed: float) -> None:
        ckpt_root = self.run_dir / "checkpoints"
        name = f"epoch-{epoch}" if batch == 0 else f"epoch-{epoch}-batch-{batch}"
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        meta = {
            "epoch": epoch, "batch": batch, "step": self.step, "elapsed": elapsed,
            "history": self.history, "best": self.best, "bad_epochs": self.bad_epochs,
            "python_rng": _py_rng_to_json(random.getstate()),
            "numpy_rng": _np_rng_to_json(np.random.get_state()),
        }
        save_checkpoint_dir(ckpt_root / name, self.model, state, meta)
        write_json_atomic(ckpt_root / "latest.json", {"checkpoint": name, "epoch": epoch, "batch": batch})
        kept = sorted((p for p in ckpt_root.iterdir() if p.is_dir() and p.name.startswith("epoch-")),
                      key=lambda p: p.stat().st_mtime)
        for old in kept[: -self.cfg.keep_checkpoints]:
            if old.name != name:
                import shutil

                shutil.rmtree(old, ignore_errors=True)
        self._emit("ft_checkpoint_saved", run=self.info, path=ckpt_root / name, epoch=epoch)

    def _restore(self, resume: bool | str | Path) -> tuple[int, int, float]:
        if isinstance(resume, (str, Path)):
            path = Path(resume)
        else:
            if self.run_dir is None:
                raise FtError("cannot resume: this trainer has no run directory")
            pointer = self.run_dir / "checkpoints" / "latest.json"
            if not pointer.exists():
                raise FtError("no checkpoint to resume from", where=str(self.run_dir),
                              hint="start the run without --resume")
            import json

            path = self.run_dir / "checkpoints" / json.loads(pointer.read_text())["checkpoint"]
        state, meta = read_checkpoint_dir(path)
        load_weights(self.model, path / "model.safetensors")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            if "ema" not in state:
                raise FtError("the checkpoint holds no weight average, but train.ema_decay is set", where=str(path),
                              hint="resume with the train.ema_decay the run started with (unset it if none)")
            self.ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        random.setstate(_py_rng_from_json(meta["python_rng"]))
        np.random.set_state(_np_rng_from_json(meta["numpy_rng"]))
        self.step = meta["step"]
        self.history = meta["history"]
        self.best = meta["best"]
        self.bad_epochs = meta["bad_epochs"]
        self._mults = self._group_multipliers()
        return meta["epoch"], meta["batch"], meta["elapsed"]

    def _emit(self, hook: str, **kwargs: Any) -> None:
        if self.rank != 0:
            return
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(**kwargs)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _py_rng_to_json(state: tuple) -> list:
    return [state[0], list(state[1]), state[2]]


def _py_rng_from_json(data: list) -> tuple:
    return (data[0], tuple(data[1]), data[2])


def _np_rng_to_json(state: tuple) -> list:
    return [state[0], state[1].tolist(), int(state[2]), int(state[3]), float(state[4])]


def _np_rng_from_json(data: list) -> tuple:
    return (data[0], np.array(data[1], dtype=np.uint32), data[2], data[3], data[4])
