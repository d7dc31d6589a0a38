"""Optimizer and learning-rate schedule from recipe settings and a strategy."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .contracts import HEAD_GROUP
from .freezing import FreezeStrategy, ParamGroup, Progress
from .recipe import OptimSection


def no_weight_decay(param: nn.Parameter) -> bool:
    """Biases and norm weights (1-D tensors) take no weight decay (timm's rule)."""
    return param.ndim <= 1


def build_optimizer(groups: list[ParamGroup], cfg: OptimSection, device: torch.device,
                    merge: bool = False) -> tuple[torch.optim.Optimizer, str]:
    """Explicit optimizer groups: each strategy group split into decay and
    no-decay parts. With ``merge`` (a strategy whose learning rates never
    change per group) groups that train alike share one optimizer group:
    each group costs a separate pass of a foreach/fused optimizer step, and
    a model with many layer groups would pay it many times a step. Returns
    the optimizer and a word on its implementation."""
    torch_groups: list[dict] = []
    alike: dict[tuple[float, float], dict] = {}
    for group in groups:
        mult = group.lr_mult * (cfg.head_lr_mult if group.name == HEAD_GROUP else 1.0)
        decay = [p for p in group.params if p.requires_grad and not no_weight_decay(p)]
        plain = [p for p in group.params if p.requires_grad and no_weight_decay(p)]
        wd_decay = cfg.weight_decay if group.weight_decay is None else group.weight_decay
        for params, wd in ((decay, wd_decay), (plain, 0.0)):
            if not params:
                continue
            key = (cfg.lr * mult, wd)
            if merge and key in alike:
                alike[key]["params"] += params
                if group.name not in alike[key]["ft_group"].split("+"):
                    alike[key]["ft_group"] += f"+{group.name}"
                continue
            torch_groups.append({"params": params, "lr": cfg.lr * mult, "weight_decay": wd, "ft_group": group.name})
            alike[key] = torch_groups[-1]
    if not torch_groups:
        raise ValueError("no trainable parameters: the freeze strategy froze everything")
    if cfg.name == "sgd":
        return torch.optim.SGD(torch_groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov), "sgd"
    fused = cfg.fused
    if fused == "auto":
        fused = device.type == "cuda"
    impl = "fused" if fused else "foreach"
    kwargs = {"fused": True} if fused else {"foreach": True}
    return torch.optim.AdamW(torch_groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, **kwargs), impl


def schedule_fn(cfg: OptimSection, total_steps: int) -> Callable[[int], float]:
    """Warmup then cosine / linear decay / constant, as a factor of the base LR."""
    warmup = cfg.warmup_steps or int(cfg.warmup_ratio * total_steps)
    floor = cfg.min_lr_ratio

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "constant":
            return 1.0
        span = max(1, total_steps - warmup)
        t = min(1.0, (step - warmup) / span)
        decay = 0.5 * (1 + math.cos(math.pi * t)) if cfg.schedule == "cosine" else 1 - t
        return floor + (1 - floor) * decay

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimSection, total_steps: int,
                    strategy: FreezeStrategy, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """One LR lambda per optimizer group: schedule x strategy multiplier."""
    base = schedule_fn(cfg, total_steps)

    def for_group(name: str) -> Callable[[int], float]:
        def lam(step: int) -> float:
            progress = Progress(step, step // max(1, steps_per_epoch), steps_per_epoch)
            return base(step) * strategy.lr_multiplier(name, progress)
        return lam

    return torch.optim.lr_scheduler.LambdaLR(optimizer, [for_group(g["ft_group"]) for g in optimizer.param_groups])
