"""The metric that picks the best epoch and stops training early.

The core never guesses a metric's direction from its name: the loss is
lower-is-better by definition, and every other metric's direction is what
its evaluator declares in :attr:`ft.Evaluator.higher_is_better`.
"""

from __future__ import annotations

from typing import Any

from .errors import FtError

#: metrics (without the split prefix) the trainer itself computes, lower is better by definition
LOWER_IS_BETTER_BY_DEFINITION = ("loss",)


def metric_mode(name: str, evaluator: Any | None, where: str) -> str:
    """``"max"`` if a larger ``name`` (``val_accuracy``) is better, else
    ``"min"``: ``min`` for the loss, else as ``evaluator.higher_is_better``
    declares. A metric nobody declares is an :class:`ft.FtError` at
    ``where`` (the setting that named the metric)."""
    bare = name.split("_", 1)[1] if name.startswith(("val_", "train_", "test_")) else name
    if bare in LOWER_IS_BETTER_BY_DEFINITION:
        return "min"
    declared = dict(getattr(evaluator, "higher_is_better", None) or {})
    if bare in declared:
        return "max" if declared[bare] else "min"
    owner = f"the evaluator {type(evaluator).__name__}" if evaluator is not None else "the model (it has no evaluator)"
    known = ", ".join(sorted(declared)) or "none"
    raise FtError(f"cannot tell whether a larger {name!r} is better: {owner} does not declare {bare!r} "
                  f"(declared metrics: {known})", where=where,
                  hint=f'set train.monitor_mode = "max" or "min", or declare it in the evaluator: '
                       f'higher_is_better = {{"{bare}": True}}')


class Monitor:
    """Tracks ``name`` over epochs: the best value and epoch, and how many
    epochs have gone by without improvement (early stopping's count)."""

    def __init__(self, name: str, mode: str):
        self.name = name
        self.mode = mode
        self.best: dict = {"value": None, "epoch": None}
        self.bad_epochs = 0

    def update(self, metrics: dict) -> bool:
        """Fold in one epoch's metrics; True if it is the best so far. A
        missing or NaN value is no improvement and no count."""
        value = metrics.get(self.name)
        if value is None or value != value:
            return False
        best = self.best["value"]
        better = best is None or (value > best if self.mode == "max" else value < best)
        if better:
            self.best = {"value": value, "epoch": metrics["epoch"]}
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        return better

    def state(self) -> dict:
        """The best value and epoch and the epochs without improvement (for checkpoints)."""
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load(self, state: dict) -> None:
        """Restore what :meth:`state` returned (on resume)."""
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]

    def describe(self) -> str:
        """``name (mode)``, as printed at start and saved in the summary."""
        return f"{self.name} ({self.mode})"
