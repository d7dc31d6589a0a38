"""An exponential moving average of the weights (``train.ema_decay``).

After every optimizer step ``shadow = d * shadow + (1 - d) * weights``, with
``d = min(decay, (1 + step) / (10 + step))`` so the first steps are not
drowned in the starting weights (timm's ``ModelEmaV3`` warm-up). The
trainer validates, keeps ``best/`` and ends with the averaged weights; its
checkpoints hold both the live weights and the shadow, so a resumed run is
exact. Only what can change is averaged: the parameters the optimizer
holds and the floating-point buffers (BatchNorm statistics).
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

import torch
from torch import nn


class WeightEMA:
    """The shadow weights of ``params`` (names -> tensors of ``model``)."""

    def __init__(self, model: nn.Module, params: Iterable[torch.Tensor], decay: float):
        self.decay = decay
        chosen = {id(p) for p in params}
        named = [(n, p) for n, p in model.named_parameters() if id(p) in chosen]
        named += [(n, b) for n, b in model.named_buffers() if b.is_floating_point()]
        self.names = [n for n, _ in named]
        self.live = [t for _, t in named]
        self.shadow = [t.detach().clone() for t in self.live]

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold the current weights in, after optimizer step number ``step``."""
        torch._foreach_lerp_(self.shadow, [t.detach() for t in self.live], 1.0 - self.decay_at(step))

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own after."""
        with torch.no_grad():
            backup = [t.detach().clone() for t in self.live]
            torch._foreach_copy_(self.live, self.shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.live, backup)

    @torch.no_grad()
    def copy_to_model(self) -> None:
        """Make the averaged weights the model's own (the end of training)."""
        torch._foreach_copy_(self.live, self.shadow)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.shadow))

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.names) - set(state)
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:3]}")
        for name, shadow in zip(self.names, self.shadow):
            shadow.copy_(state[name])
