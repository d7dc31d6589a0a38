"""The trainer's setup. Before the first step: the model placed, wrapped
(DDP, FSDP2, compile) and frozen by its strategy; the loaders; optimizer,
schedule, scaler, EMA and the strategy's learning-rate multipliers; the
watched metric; whether frozen features are cached; and the settings
printed at the start. At each epoch's start: its loader (cached features
while the backbone is frozen) with the sampler set to the epoch and, on a
resume, to the batch it stopped at.

:class:`_TrainerSetup` is a base of :class:`ft.Trainer` (its methods are
the trainer's, documented with it); the loop and evaluation live in
trainer.py, checkpoints and snapshots in trainer_state.py.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .checkpoint import TrainingParts
from .data import make_loader
from .errors import FtError
from .ema import WeightEMA
from .feature_cache import FeatureCache
from .freezing import FreezeStrategy, Progress, apply_strategy, parameter_table
from .monitor import Monitor, metric_mode
from .optim import build_optimizer, build_scheduler
from .parallel import configure_cuda, cpu_has_native_bf16, enable_activation_checkpointing, shard_fsdp, wrap_ddp
from .progress import Progress as ProgressBar
from .sync_batchnorm import has_batch_norm


class _TrainerSetup:
    """Setup of :class:`ft.Trainer` (see the module doc); ``Trainer.__init__`` sets what it reads."""

    def setup(self) -> None:
        """Place and wrap the model, build loaders, optimizer and schedule."""
        if self._setup_done:
            return
        seed_everything(self.cfg.seed)  # the same on every rank: whatever the strategy builds (LoRA) agrees
        configure_cuda(self.device, self.cfg.tf32, self.cfg.cudnn_benchmark)
        self._setup_model()
        seed_everything(self.cfg.seed + self.rank)  # each rank its own dropout and noise (rank 0: the seed)
        self._setup_data()
        self._setup_optimizer()
        self._setup_monitor()
        self.feature_cache, self.cache_note = self._plan_feature_cache()
        self._forward = self.forward_model
        self._setup_done = True

    def _setup_model(self) -> None:
        apply_strategy(self.strategy, self.model)
        self.model.to(self.device)
        if self.float_dtype is not None:
            self.model.to(self.float_dtype)
        if self.cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.checkpointing = enable_activation_checkpointing(self.model) if self.cfg.activation_checkpointing \
            else "off"
        self.sync_bn = self.cfg.sync_batchnorm and self.dist.enabled and has_batch_norm(self.model)
        self.forward_model: nn.Module = self.model
        self.fsdp_units: list[str] = []
        if self.sharded:
            self.fsdp_units = shard_fsdp(self.model, self.cfg)
        elif self.dist.enabled:
            self.forward_model = wrap_ddp(self.model, self.device, self.cfg)
        if self.cfg.compile:
            self.forward_model = torch.compile(self.forward_model)
        # after wrapping: strategies that keep copies of weights (l2sp) copy the synchronised (or sharded) ones
        self.strategy.prepare(self.model, self.data, self.device)

    def _setup_data(self) -> None:
        probe = self.make_evaluator() if self.make_evaluator else None
        self.shard_eval = self.dist.enabled and (probe is None or probe.mergeable)
        self.train_loader = self._loader(self._train_data, train=True)
        self.val_loader = self._loader(self._val_data, train=False)
        self.batches_per_epoch = len(self.train_loader)
        self.steps_per_epoch = -(-self.batches_per_epoch // self.cfg.grad_accum)

    def _setup_optimizer(self) -> None:
        self.groups = self.strategy.param_groups(self.model)
        # a strategy that never changes a group's learning rate lets groups that train alike share one
        merge = type(self.strategy).lr_multiplier is FreezeStrategy.lr_multiplier
        self.optimizer, self.optim_impl = build_optimizer(self.groups, self.optim_cfg, self.device, merge)
        total = self.steps_per_epoch * self.cfg.epochs
        self.total_steps = min(total, self.cfg.max_steps) if self.cfg.max_steps else total
        self.scheduler = build_scheduler(self.optimizer, self.optim_cfg, self.total_steps, self.strategy,
                                         self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        self.trainable = [p for g in self.groups for p in g.params if p.requires_grad]
        self.ema = (WeightEMA(self.model, [p for g in self.groups for p in g.params], self.cfg.ema_decay)
                    if self.cfg.ema_decay else None)
        self.parts = TrainingParts(self.model, self.optimizer, self.scheduler, self.scaler, self.ema, self.sharded)
        self._mults = self._group_multipliers()

    def _group_multipliers(self) -> dict[str, float]:
        progress = Progress(self.step, self.step // max(1, self.steps_per_epoch), self.steps_per_epoch)
        return {g.name: self.strategy.lr_multiplier(g.name, progress) for g in self.groups}

    def _setup_monitor(self) -> None:
        """The watched metric (``train.monitor``, else the head's default on
        the validation split, else the loss) and its direction: the recipe's
        ``train.monitor_mode``, else what the evaluator declares."""
        head = getattr(self.model, "head", None)
        default_metric = getattr(head, "default_metric", None)
        if self.cfg.monitor:
            name, where = self.cfg.monitor, "train.monitor"
        elif self.val_loader is not None and default_metric:
            name, where = f"val_{default_metric}", f"the default_metric of head {type(head).__name__}"
        else:
            name, where = ("val_loss" if self.val_loader is not None else "train_loss"), "train.monitor"
        mode = self.cfg.monitor_mode
        if mode == "auto":
            mode = metric_mode(name, self.make_evaluator() if self.make_evaluator else None, where)
        self.monitor = Monitor(name, mode)

    def _loader(self, data: Any, train: bool) -> DataLoader | None:
        if data is None or isinstance(data, DataLoader):
            return data
        batch = self.cfg.batch_size if train else (self.cfg.eval_batch_size or self.cfg.batch_size)
        # the data's batcher groups the training split (its indices and lengths); evaluation keeps dataset order
        batcher = getattr(self.data, "batcher", None) if train else None
        return make_loader(data, batch_size=batch, train=train, seed=self.cfg.seed, collate=self.collate,
                           num_workers=self.num_workers, rank=self.rank, world_size=self.world_size,
                           pin_memory=self.device.type == "cuda", batcher=batcher,
                           persistent_workers=self.cfg.persistent_workers, prefetch_factor=self.cfg.prefetch_factor,
                           shard_eval=self.shard_eval, even=self.sharded,
                           # transforms known not to draw random numbers need no per-batch seed
                           seeded=getattr(self.data, "train_augmented", True) is not False)

    def _plan_feature_cache(self) -> tuple[FeatureCache | None, str]:
        """Cache features when a frozen backbone meets unaugmented inputs."""
        setting = self.cfg.cache_features
        if setting is False:
            return None, "off (train.cache_features = false)"
        if not (hasattr(self.model, "forward_head") and hasattr(self.model, "backbone")):
            return None, "off (model has no backbone/head split)"
        if self.sharded or self.cfg.compile:
            return None, "off (not used with FSDP or compile)"
        augmented = getattr(self.data, "train_augmented", None)
        if augmented is None and setting != True:  # a bare Trainer cannot know; the user may assert it
            return None, "off (unknown whether training inputs are augmented; set train.cache_features = true)"
        if augmented:
            return None, "off (training inputs are randomly augmented)"
        directory = self.run_dir / "cache" if self.run_dir and self.cfg.feature_cache_on_disk else None
        cache = FeatureCache(self.model.backbone, getattr(self.data, "fingerprint", ""), directory, self.dist)
        return cache, "on while the backbone is frozen" + (" (each rank computes its shard)" if self.dist.enabled
                                                            else "")

    def _epoch_loader(self, epoch: int, bar: ProgressBar) -> DataLoader:
        """The loader for ``epoch``; sets the forward function to match."""
        self._caching_now = self.feature_cache is not None and self.strategy.backbone_frozen(epoch)
        if not self._caching_now:
            self._forward = self.forward_model
            return self.train_loader
        if self.feature_cache.invalidate_if_changed():
            self._cached_loaders.clear()
        if "train" not in self._cached_loaders:
            source = self.train_loader
            # dataset order (no batcher): cached row i must be example i
            ordered = make_loader(source.dataset, batch_size=self.cfg.eval_batch_size or self.cfg.batch_size,
                                  train=False, collate=source.collate_fn, num_workers=self.num_workers,
                                  rank=self.rank, world_size=self.world_size, shard_eval=self.dist.enabled)
            if not self.feature_cache.has("train"):
                bar.message(f"ft: feature cache: running the frozen backbone once over "
                            f"{len(source.dataset):,} training examples")
            pairs = self.feature_cache.get("train", ordered, self.model.forward_features, self.device,
                                           self._prepare_inputs)
            # same sampler, seed and batcher as the raw loader: the same batches in the same order
            self._cached_loaders["train"] = make_loader(pairs, batch_size=self.cfg.batch_size, train=True,
                                                        seed=self.cfg.seed, rank=self.rank,
                                                        world_size=self.world_size, seeded=False,
                                                        batcher=getattr(self.data, "batcher", None))
        self._forward = self.model.forward_head
        return self._cached_loaders["train"]

    def _start_epoch(self, epoch: int, start_batch: int, bar: ProgressBar) -> DataLoader:
        """The strategy's train/eval modes for ``epoch`` and its loader, its
        sampler set to the epoch (and to ``start_batch`` when resuming mid-epoch)."""
        self.strategy.set_train_mode(self.model, epoch)
        loader = self._epoch_loader(epoch, bar)
        sampler = loader.batch_sampler if hasattr(loader.batch_sampler, "set_epoch") else loader.sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        if start_batch:
            if not hasattr(sampler, "set_start"):
                raise FtError("cannot resume mid-epoch with this DataLoader",
                              hint="pass Datasets to ft.Trainer (it builds resumable loaders)")
            sampler.set_start(start_batch)
        return loader

    def settings(self) -> dict:
        """The effective settings, as printed at start and saved in the summary."""
        eff = self.cfg.batch_size * self.cfg.grad_accum * self.world_size
        parallel = "one process"
        if self.dist.enabled:
            parallel = (f"FSDP2 over {self.world_size} ranks ({len(self.fsdp_units)} units + root)" if self.sharded
                        else f"DDP over {self.world_size} ranks")
        return {
            "device": str(self.device), "precision": self.precision, "world_size": self.world_size,
            "backend": self.dist.backend or "none", "parallel": parallel,
            "batch": f"{self.cfg.batch_size} x accum {self.cfg.grad_accum} x {self.world_size} rank(s) = {eff}",
            "optimizer": f"{self.optim_cfg.name} ({self.optim_impl}) lr {self.optim_cfg.lr:g} "
                         f"wd {self.optim_cfg.weight_decay:g}",
            "schedule": f"{self.optim_cfg.schedule}, warmup "
                        f"{self.optim_cfg.warmup_steps or int(self.optim_cfg.warmup_ratio * self.total_steps)} "
                        f"of {self.total_steps} steps",
            "strategy": self.strategy.describe(),
            "num_workers": self.num_workers,
            "channels_last": self.cfg.channels_last, "compile": self.cfg.compile,
            "activation_checkpointing": self.checkpointing,
            "sync_batchnorm": self.sync_bn,
            "tf32": self.cfg.tf32 if self.device.type == "cuda" else "n/a (cpu)",
            "clip_grad_norm": self.cfg.clip_grad_norm, "ema_decay": self.cfg.ema_decay,
            "monitor": self.monitor.describe(),
            "feature_cache": self.cache_note,
            "callbacks": [type(c).__name__ for c in self.callbacks],
        }

    def _announce(self, bar: ProgressBar, resume: Any, start_epoch: int, start_batch: int) -> None:
        """The start banner: effective settings, devices per rank, parameter counts."""
        devices = self.dist.all_gather_object(str(self.device))
        if not self.dist.is_main:
            return
        shown = {k: v for k, v in self.settings().items() if k not in ("strategy", "callbacks")}
        bar.message("ft: " + " | ".join(f"{k} {v}" for k, v in shown.items()))
        if self.precision == "bf16" and self.device.type == "cpu" and not cpu_has_native_bf16():
            bar.message("ft: warning: this CPU has no native bfloat16 (AVX512-BF16 or AMX): bf16 autocast is "
                        "emulated here and several times slower than fp32 (set train.precision = \"fp32\")")
        if self.dist.enabled:
            bar.message("ft: devices " + ", ".join(f"rank {r} {d}" for r, d in enumerate(devices)))
        for row in parameter_table(self.model):
            bar.message(f"ft:   {row['group']:<24} trainable {row['trainable']:>11,}  frozen {row['frozen']:>11,}")
        if resume:
            bar.message(f"ft: resumed at epoch {start_epoch + 1}, batch {start_batch}, step {self.step}")


def seed_everything(seed: int) -> None:
    """Seed ``random``, numpy and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
