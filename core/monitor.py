"""The metric that picks the best epoch and stops training early."""

from __future__ import annotations

HIGHER_IS_BETTER = ("accuracy", "f1", "ndcg", "recall", "hit", "precision", "auc", "map", "mrr", "r2", "exact_match")


def metric_mode(name: str, default_metric: str | None = None, default_mode: str = "min") -> str:
    """``"max"`` if a larger ``name`` is better, else ``"min"``: the head's
    word for its default metric, else a guess from the name."""
    bare = name.split("_", 1)[1] if name.startswith(("val_", "train_", "test_")) else name
    if default_metric and bare == default_metric:
        return default_mode
    return "max" if any(word in bare for word in HIGHER_IS_BETTER) else "min"


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
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load(self, state: dict) -> None:
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]

    def describe(self) -> str:
        return f"{self.name} ({self.mode})"
