"""Task metrics for the built-in task types, as evaluators.

Evaluators accumulate on the fly (a confusion matrix, running sums), so
evaluation memory does not grow with the split. Their state is additive and
exact (integer counts, :class:`ExactSum`, :class:`PairSample`), so under DDP
the ranks' shards merge into the very figures one process computes over the
whole split. Each also declares its split's report (:meth:`report`, written
by :mod:`ft.report`): per-class or per-label tables, a confusion matrix, a
predicted-against-true plot.
"""

from __future__ import annotations

import math

import torch

from .contracts import Evaluator
from .report import Heatmap, Report, Scatter, Table

#: (true, predicted) pairs a regression report keeps at most for its plot and CSV
REPORT_PAIRS = 20_000


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


class ExactSums:
    """:class:`ExactSum` element-wise over vectors of one length (a metric
    at every K = 1..50): each column's sum does not depend on the order of
    addition."""

    def __init__(self) -> None:
        self.parts: list[list[float]] = []

    def add(self, values: torch.Tensor | list[float]) -> None:
        """Add one vector (a 1-D tensor or a list of numbers)."""
        self.parts.append([float(v) for v in (values.tolist() if isinstance(values, torch.Tensor) else values)])

    def merge(self, other: "ExactSums") -> None:
        """Add every vector of ``other`` (another rank's share)."""
        self.parts.extend(other.parts)

    @property
    def value(self) -> list[float]:
        """Each column's sum, correctly rounded (empty before the first vector)."""
        return [math.fsum(column) for column in zip(*self.parts)]


class PairSample:
    """Up to ``cap`` ``(target, true, predicted)`` triples of a regression
    split, for its plot: all of them while there are fewer, else the ``cap``
    with the smallest hash of their values.

    The hash depends on a triple's values only, so the sample is the same
    whatever order the triples come in and however the ranks' shards are
    merged: one process keeps the very triples two ranks do.
    """

    def __init__(self, cap: int = REPORT_PAIRS) -> None:
        self.cap = cap
        self.seen = 0
        # chunks of (hashes int64 [n], rows float64 [n, 3]: target, true, predicted)
        self.chunks: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.pending = 0

    def add(self, target: torch.Tensor, true: torch.Tensor, predicted: torch.Tensor) -> None:
        """Fold in triples given as three tensors of one length (``target``: the output's index)."""
        target, true, predicted = (t.detach().reshape(-1).double().cpu().contiguous()
                                   for t in (target, true, predicted))
        self._append(_pair_hash(target, true, predicted), torch.stack([target, true, predicted], 1))
        self.seen += len(true)

    def merge(self, other: "PairSample") -> None:
        """Fold in ``other``'s triples (another rank's share)."""
        for hashes, rows in other.chunks:
            self._append(hashes, rows)
        self.seen += other.seen

    def _append(self, hashes: torch.Tensor, rows: torch.Tensor) -> None:
        self.chunks.append((hashes, rows))
        self.pending += len(rows)
        if self.pending > 2 * self.cap:  # compact now and then: the bottom-cap of a union is that of the parts'
            self.chunks = [self._kept()]
            self.pending = len(self.chunks[0][1])

    def _kept(self) -> tuple[torch.Tensor, torch.Tensor]:
        hashes = torch.cat([h for h, _ in self.chunks]) if self.chunks else torch.zeros(0, dtype=torch.int64)
        rows = torch.cat([r for _, r in self.chunks]) if self.chunks else torch.zeros(0, 3, dtype=torch.float64)
        order = _lexsort([hashes, rows[:, 0], rows[:, 1], rows[:, 2]])[:self.cap]  # ties break on the values
        return hashes[order], rows[order]

    def triples(self) -> list[tuple[int, float, float]]:
        """The kept ``(target, true, predicted)`` triples, by target then true value."""
        _, rows = self._kept()
        rows = rows[_lexsort([rows[:, 0], rows[:, 1], rows[:, 2]])]
        return [(int(t), true, pred) for t, true, pred in rows.tolist()]


def _lexsort(keys: list[torch.Tensor]) -> torch.Tensor:
    """The order that sorts by ``keys[0]``, then ``keys[1]``, ... (stable sorts, last key first)."""
    order = torch.arange(len(keys[0]))
    for key in reversed(keys):
        order = order[torch.sort(key[order], stable=True).indices]
    return order


def _pair_hash(target: torch.Tensor, true: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """A well-mixed 64-bit hash of each triple's bits (splitmix64's finaliser)."""
    z = _mix(true.view(torch.int64) ^ _mix(target.to(torch.int64) + 0x632BE59BD9B4E019))
    return _mix(z ^ predicted.view(torch.int64))


def _mix(z: torch.Tensor) -> torch.Tensor:
    # int64 products wrap around, as the uint64 ones of splitmix64 do; shifts are made logical by masking
    z = (z ^ ((z >> 30) & ((1 << 34) - 1))) * -4658895280553007687  # 0xbf58476d1ce4e5b9
    z = (z ^ ((z >> 27) & ((1 << 37) - 1))) * -7723592293110705685  # 0x94d049bb133111eb
    return z ^ ((z >> 31) & ((1 << 33) - 1))


def _names(names: tuple[str, ...] | list[str] | None, n: int) -> list[str]:
    return list(names) if names else [str(i) for i in range(n)]


class ClassificationEvaluator(Evaluator):
    """Accuracy and macro-F1 from a confusion matrix (outputs are logits);
    its report: per-class precision, recall and F1, and the confusion
    matrix (CSV and heatmap). ``class_names`` label the report (default: the
    class indices)."""

    sums = ("confusion",)
    higher_is_better = {"accuracy": True, "macro_f1": True}

    def __init__(self, num_classes: int, class_names: tuple[str, ...] | list[str] | None = None):
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
        self.class_names = _names(class_names, num_classes)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        pred = outputs.argmax(dim=-1).cpu()
        k = self.confusion.shape[0]
        idx = targets.cpu().long() * k + pred
        self.confusion += torch.bincount(idx, minlength=k * k).reshape(k, k)

    def per_class(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per class: precision, recall, F1 and support (examples of the
        class); a ratio with nothing to divide is 0 (scikit-learn's
        ``zero_division=0``)."""
        c = self.confusion.double()
        tp = c.diag()
        precision = tp / c.sum(0).clamp(min=1)
        recall = tp / c.sum(1).clamp(min=1)
        f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), torch.zeros_like(tp))
        return precision, recall, f1, c.sum(1)

    def compute(self) -> dict[str, float]:
        precision, recall, f1, support = self.per_class()
        total = support.sum().item()
        present = support > 0  # macro over classes that occur in this split
        return {
            "accuracy": self.confusion.diag().sum().item() / total if total else float("nan"),
            "macro_f1": f1[present].mean().item() if present.any() else float("nan"),
        }

    def report(self) -> Report:
        """Per-class precision/recall/F1/support, the confusion matrix (rows
        true, columns predicted) as a table and a heatmap."""
        precision, recall, f1, support = self.per_class()
        names = self.class_names
        per_class = [[name, p, r, f, int(n)] for name, p, r, f, n in
                     zip(names, precision.tolist(), recall.tolist(), f1.tolist(), support.tolist())]
        counts = self.confusion.tolist()
        metrics = self.compute()
        present = [row for row in per_class if row[4]]
        weakest = min(present, key=lambda row: row[3]) if present else None
        if weakest and all(row[3] == weakest[3] for row in present):
            weakest = None  # every class scores alike: none is the weakest
        summary = (f"{int(support.sum())} examples: accuracy {metrics['accuracy']:.4f}, macro F1 "
                   f"{metrics['macro_f1']:.4f}" + (f"; weakest class `{weakest[0]}` (F1 {weakest[3]:.4f})."
                                                   if weakest else "."))
        return Report(
            tables=[Table("per_class", ["class", "precision", "recall", "f1", "support"], per_class,
                          title="Per class"),
                    Table("confusion", ["true \\ predicted", *names], [[n, *row] for n, row in zip(names, counts)],
                          title="Confusion matrix", card_rows=())],
            figures=[Heatmap("confusion", counts, names, title="Confusion matrix")],
            summary=summary)


class MultilabelEvaluator(Evaluator):
    """Micro/macro F1 and exact-match ratio at threshold 0.5 (outputs are
    logits); its report: per-label precision, recall and F1. ``label_names``
    label the report (default: the label indices)."""

    sums = ("tp", "fp", "fn", "exact", "count")
    higher_is_better = {"micro_f1": True, "macro_f1": True, "exact_match": True}

    def __init__(self, num_labels: int, label_names: tuple[str, ...] | list[str] | None = None):
        self.label_names = _names(label_names, num_labels)
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

    def report(self) -> Report:
        """Per-label precision, recall, F1 and support. A ratio with nothing
        to divide is 1 (scikit-learn's ``zero_division=1``): a label neither
        present nor predicted is scored perfect, as ``macro_f1`` scores it,
        so ``macro_f1`` is the mean of the table's F1 column."""
        tp, fp, fn = self.tp.double(), self.fp.double(), self.fn.double()
        ones = torch.ones_like(tp)
        precision = torch.where(tp + fp > 0, tp / (tp + fp).clamp(min=1), ones)
        recall = torch.where(tp + fn > 0, tp / (tp + fn).clamp(min=1), ones)
        denom = 2 * tp + fp + fn
        f1 = torch.where(denom > 0, 2 * tp / denom.clamp(min=1e-12), ones)
        rows = [[name, p, r, f, int(n)] for name, p, r, f, n in
                zip(self.label_names, precision.tolist(), recall.tolist(), f1.tolist(), (self.tp + self.fn).tolist())]
        metrics = self.compute()
        return Report(tables=[Table("per_label", ["label", "precision", "recall", "f1", "support"], rows,
                                    title="Per label (threshold 0.5)")],
                      summary=f"{self.count} examples: micro F1 {metrics['micro_f1']:.4f}, macro F1 "
                              f"{metrics['macro_f1']:.4f}, exact match {metrics['exact_match']:.4f}.")


class RegressionEvaluator(Evaluator):
    """MAE and RMSE over all targets; its report: predicted against true
    values (a plot per target and a CSV of the pairs, at most
    :data:`REPORT_PAIRS`, a sample the same under any sharding).
    ``target_names`` label the report (default: the target indices)."""

    sums = ("abs_sum", "sq_sum", "count", "pairs")
    higher_is_better = {"mae": False, "rmse": False}

    def __init__(self, target_names: tuple[str, ...] | list[str] | None = None) -> None:
        self.abs_sum = ExactSum()
        self.sq_sum = ExactSum()
        self.count = 0
        self.pairs = PairSample()
        self.target_names = list(target_names) if target_names else None

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        true = targets.double().cpu()
        predicted = outputs.detach().double().cpu().reshape(true.shape)
        diff = predicted - true
        self.abs_sum.add(diff.abs().sum())
        self.sq_sum.add((diff * diff).sum())
        self.count += diff.numel()
        column = torch.arange(true.shape[-1]) if true.dim() > 1 else torch.zeros(1)
        self.pairs.add(column.expand(true.shape), true, predicted)

    def compute(self) -> dict[str, float]:
        n = max(1, self.count)
        return {"mae": self.abs_sum.value / n, "rmse": math.sqrt(self.sq_sum.value / n)}

    def report(self) -> Report:
        """Predicted against true values: a scatter plot per target and the pairs as a CSV."""
        triples = self.pairs.triples()
        targets = sorted({t for t, _, _ in triples})
        names = self.target_names or _names(None, max(targets, default=0) + 1)
        name = lambda t: names[t] if t < len(names) else str(t)  # noqa: E731
        series = {name(t): ([tr for i, tr, _ in triples if i == t], [p for i, _, p in triples if i == t])
                  for t in targets}
        metrics = self.compute()
        shown = "all" if len(triples) == self.pairs.seen else f"a sample of {len(triples)}"
        return Report(
            tables=[Table("pred_vs_true", ["target", "true", "predicted"],
                          [[name(t), tr, p] for t, tr, p in triples], card_rows=())],
            figures=[Scatter("pred_vs_true", series, title="Predicted against true values")],
            summary=f"{self.pairs.seen} values: MAE {metrics['mae']:.4f}, RMSE {metrics['rmse']:.4f}; the plot "
                    f"shows {shown} of them.")
