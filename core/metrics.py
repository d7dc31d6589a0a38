"""Task metrics for the built-in task types, as evaluators.

Evaluators accumulate on the fly (a confusion matrix, running sums), so
evaluation memory does not grow with the split. Their state is additive and
exact (integer counts, :class:`ExactSum`), so under DDP the ranks' shards
merge into the very figures one process computes over the whole split.
"""

from __future__ import annotations

import math

import torch

from .contracts import Evaluator


class ExactSum:
    """A float sum whose result does not depend on the order of addition.

    It keeps the addends (one per batch, so a few per split) and adds them
    with :func:`math.fsum`, which rounds the exact sum once. Merging the
    shards of several ranks, in any order, therefore gives the same last bit
    as one process adding everything.
    """

    def __init__(self) -> None:
        self.parts: list[float] = []

    def add(self, value: float | torch.Tensor) -> None:
        """Add one addend (a number or a one-element tensor)."""
        self.parts.append(float(value))

    def merge(self, other: "ExactSum") -> None:
        """Add every addend of ``other`` (another rank's share)."""
        self.parts.extend(other.parts)

    @property
    def value(self) -> float:
        """The sum, correctly rounded."""
        return math.fsum(self.parts)


class ClassificationEvaluator(Evaluator):
    """Accuracy and macro-F1 from a confusion matrix (outputs are logits)."""

    sums = ("confusion",)
    higher_is_better = {"accuracy": True, "macro_f1": True}

    def __init__(self, num_classes: int):
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        pred = outputs.argmax(dim=-1).cpu()
        k = self.confusion.shape[0]
        idx = targets.cpu().long() * k + pred
        self.confusion += torch.bincount(idx, minlength=k * k).reshape(k, k)

    def compute(self) -> dict[str, float]:
        c = self.confusion.double()
        total = c.sum().item()
        tp = c.diag()
        precision = tp / c.sum(0).clamp(min=1)
        recall = tp / c.sum(1).clamp(min=1)
        f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), torch.zeros_like(tp))
        present = c.sum(1) > 0  # macro over classes that occur in this split
        return {
            "accuracy": tp.sum().item() / total if total else float("nan"),
            "macro_f1": f1[present].mean().item() if present.any() else float("nan"),
        }


class MultilabelEvaluator(Evaluator):
    """Micro/macro F1 and exact-match ratio at threshold 0.5 (outputs are logits)."""

    sums = ("tp", "fp", "fn", "exact", "count")
    higher_is_better = {"micro_f1": True, "macro_f1": True, "exact_match": True}

    def __init__(self, num_labels: int):
        self.tp = torch.zeros(num_labels, dtype=torch.long)
        self.fp = torch.zeros(num_labels, dtype=torch.long)
        self.fn = torch.zeros(num_labels, dtype=torch.long)
        self.exact = 0
        self.count = 0

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        pred = outputs.detach().float().cpu() > 0
        t = targets.cpu() > 0.5
        self.tp += (pred & t).sum(0)
        self.fp += (pred & ~t).sum(0)
        self.fn += (~pred & t).sum(0)
        self.exact += int((pred == t).all(dim=1).sum())
        self.count += len(t)

    def compute(self) -> dict[str, float]:
        tp, fp, fn = self.tp.double(), self.fp.double(), self.fn.double()
        denom = 2 * tp + fp + fn
        per_label = torch.where(denom > 0, 2 * tp / denom.clamp(min=1e-12), torch.ones_like(denom))
        micro_denom = denom.sum()
        return {
            "micro_f1": (2 * tp.sum() / micro_denom).item() if micro_denom > 0 else 1.0,
            "macro_f1": per_label.mean().item(),
            "exact_match": self.exact / max(1, self.count),
        }


class RegressionEvaluator(Evaluator):
    """MAE and RMSE over all targets."""

    sums = ("abs_sum", "sq_sum", "count")
    higher_is_better = {"mae": False, "rmse": False}

    def __init__(self) -> None:
        self.abs_sum = ExactSum()
        self.sq_sum = ExactSum()
        self.count = 0

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        diff = outputs.detach().double().cpu().reshape(targets.shape) - targets.double().cpu()
        self.abs_sum.add(diff.abs().sum())
        self.sq_sum.add((diff * diff).sum())
        self.count += diff.numel()

    def compute(self) -> dict[str, float]:
        n = max(1, self.count)
        return {"mae": self.abs_sum.value / n, "rmse": math.sqrt(self.sq_sum.value / n)}
