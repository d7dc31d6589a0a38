"""Recommender heads (``ranking``, ``rating``) and full-catalogue ranking metrics.

Why the backbone returns catalogue scores and the head only calibrates them:
every learned item representation (ID table, item tower, the encoder's tied
output embeddings) stays in the backbone's layer groups, so freeze strategies
can freeze or slow the item side (``freeze_bottom`` n = 1 = item table
frozen); a head holding the item vectors would make "item table frozen"
inexpressible, since every strategy trains the head. It is also how RecBole
splits a model (``full_sort_predict`` scores the catalogue; its trainer and
evaluator are model-agnostic) and needs no change to the head contract,
which only sees features.

The ranking head adds a per-item offset and a temperature (so
``linear_probe`` re-fits item popularity and score sharpness over a frozen
scorer), masks column 0 (padding), and owns the loss: full softmax over the
catalogue, sampled softmax, or BPR. Metrics rank the FULL catalogue minus the
user's known items (no sampled negatives): Recall@K = hits / |relevant|,
HitRate@K = any hit, NDCG@K with binary relevance and the ideal DCG over
min(|relevant|, K) items. The run's report holds them at every K = 1..50
(a CSV and a plot), summed exactly like the metrics.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ft.contracts import Evaluator, Head, TaskInfo
from ft.errors import FtError
from ft.metrics import ExactSum, ExactSums, RegressionEvaluator
from ft.report import Curves, Report, Table
from ft.specs import Options

#: the report's metrics run from K = 1 to this cut-off
REPORT_MAX_K = 50
#: the rows of the report's metrics-at-K table the model card shows (and the last K)
CARD_KS = (1, 5, 10, 20)


def _masked(scores: torch.Tensor, relevant: torch.Tensor,
            exclude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores with excluded items and column 0 at -inf; relevance without them."""
    scores = scores.double().masked_fill(exclude, float("-inf"))
    scores[:, 0] = float("-inf")
    relevant = relevant & ~exclude
    relevant[:, 0] = False
    return scores, relevant


def ranking_metrics(scores: torch.Tensor, relevant: torch.Tensor, exclude: torch.Tensor,
                    k: int = 10) -> dict[str, torch.Tensor]:
    """Per-user Recall@k, NDCG@k and HitRate@k over the full catalogue.

    ``scores``: ``[B, n_items]``; ``relevant``/``exclude``: bool ``[B,
    n_items]``. Excluded items (the user's known items; column 0 is never
    ranked) cannot be recommended and do not count as relevant. Users without
    a relevant item get NaN (callers skip them).
    """
    scores, relevant = _masked(scores, relevant, exclude)
    k = min(k, scores.shape[1])
    top_scores, top = scores.topk(k, dim=1)
    hits = relevant.gather(1, top) & torch.isfinite(top_scores)
    discount = 1.0 / torch.log2(torch.arange(k, dtype=torch.float64, device=scores.device) + 2)
    n_rel = relevant.sum(1)
    dcg = (hits.double() * discount).sum(1)
    ideal = torch.cumsum(discount, 0)[(n_rel.clamp(min=1, max=k) - 1)]
    nan = torch.full_like(dcg, float("nan"))
    has = n_rel > 0
    return {
        f"recall@{k}": torch.where(has, hits.sum(1).double() / n_rel.clamp(min=1), nan),
        f"ndcg@{k}": torch.where(has, dcg / ideal, nan),
        f"hit@{k}": torch.where(has, hits.any(1).double(), nan),
    }


def ranking_curves(scores: torch.Tensor, relevant: torch.Tensor, exclude: torch.Tensor,
                   max_k: int = REPORT_MAX_K) -> dict[str, torch.Tensor]:
    """Per-user Recall, NDCG and HitRate at every K = 1..max_k (at most the
    catalogue size): ``{"ndcg": [B, K], "recall": ..., "hit": ...}``, column
    ``K - 1`` what :func:`ranking_metrics` gives at ``k = K``; NaN rows for
    users without a relevant item."""
    scores, relevant = _masked(scores, relevant, exclude)
    k = min(max_k, scores.shape[1])
    top_scores, top = scores.topk(k, dim=1)
    hits = (relevant.gather(1, top) & torch.isfinite(top_scores)).double()
    discount = 1.0 / torch.log2(torch.arange(k, dtype=torch.float64, device=scores.device) + 2)
    n_rel = relevant.sum(1, keepdim=True)
    found = hits.cumsum(1)
    cut = torch.arange(1, k + 1, device=scores.device)
    ideal = torch.cumsum(discount, 0)[torch.minimum(n_rel.clamp(min=1), cut) - 1]
    nan = torch.full_like(found, float("nan"))
    has = n_rel > 0
    return {
        "ndcg": torch.where(has, (hits * discount).cumsum(1) / ideal, nan),
        "recall": torch.where(has, found / n_rel.clamp(min=1), nan),
        "hit": torch.where(has, (found > 0).double(), nan),
    }


class RankingEvaluator(Evaluator):
    """Mean per-user ranking metrics; targets are bool ``[B, 2, n_items]``
    (plane 0 relevant, plane 1 known/excluded), or item indices ``[B]`` (a
    training split: each example's item is its one relevant item). Its
    report: the metrics at every K = 1..50."""

    sums = ("totals", "users", "curves")

    def __init__(self, k: int = 10):
        self.k = k
        self.higher_is_better = {name: True for name in self._names()}
        # per-user metric totals, exact whatever order ranks' shards are merged in
        self.totals: dict[str, ExactSum] = {name: ExactSum() for name in self._names()}
        self.users = 0
        # the same at every K = 1..50, for the report: one vector per batch and metric
        self.curves: dict[str, ExactSums] = {name: ExactSums() for name in ("ndcg", "recall", "hit")}

    def _names(self) -> tuple[str, ...]:
        return (f"ndcg@{self.k}", f"recall@{self.k}", f"hit@{self.k}")

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Add each user's metrics (users without a relevant item are skipped)."""
        if targets.dim() == 1:  # training examples (``ft eval --split train``): the one next item is relevant
            relevant = torch.zeros_like(outputs, dtype=torch.bool).scatter_(1, targets.long()[:, None], True)
            targets = torch.stack([relevant, torch.zeros_like(relevant)], 1)
        relevant, exclude = targets[:, 0].bool(), targets[:, 1].bool()
        metrics = ranking_metrics(outputs.detach(), relevant, exclude, self.k)
        keep = ~torch.isnan(next(iter(metrics.values())))
        for name, values in metrics.items():
            self.totals[name].add(values[keep].sum())
        self.users += int(keep.sum())
        for name, values in ranking_curves(outputs.detach(), relevant, exclude).items():
            self.curves[name].add(values[keep].sum(0))

    def compute(self) -> dict[str, float]:
        """Each metric's mean over the users seen."""
        return {n: self.totals[n].value / self.users if self.users else float("nan") for n in self._names()}

    def report(self) -> Report:
        """NDCG, Recall and HitRate at every K = 1..50 (at most the
        catalogue size): a table (the card shows K = 1, 5, 10, 20 and the
        last) and a plot."""
        users = self.users or float("nan")
        means = {name: [total / users for total in sums.value] for name, sums in self.curves.items()}
        ks = list(range(1, len(means["ndcg"]) + 1))
        rows = [[k, means["ndcg"][k - 1], means["recall"][k - 1], means["hit"][k - 1]] for k in ks]
        metrics = self.compute()
        shown = ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())
        return Report(
            tables=[Table("metrics_at_k", ["k", "ndcg", "recall", "hit"], rows, title="Metrics at K",
                          card_rows=[k - 1 for k in CARD_KS if k < len(ks)] + ([len(ks) - 1] if ks else []))],
            figures=[Curves("metrics_at_k", ks, {f"{name}@K": values for name, values in means.items()},
                            title="Full-catalogue ranking metrics at K", x_label="K")],
            summary=f"{self.users} users, full catalogue: {shown}.")


class RankingOptions(Options):
    """Options of the ``ranking`` head."""

    loss: Literal["softmax", "sampled_softmax", "bpr"] = Field(
        "softmax", description="softmax over the full catalogue, sampled softmax, or BPR")
    negatives: int = Field(100, ge=1, description="sampled_softmax / bpr: uniform negatives per example")
    k: int = Field(10, ge=1, description="cut-off of the metrics (ndcg@k, recall@k, hit@k)")
    item_offset: bool = Field(True, description="a learned per-item score offset")
    temperature: bool = Field(True, description="a learned score scale")


class RankingHead(Head):
    """Catalogue scores -> calibrated scores; the ranking loss and metrics."""

    def __init__(self, options: RankingOptions, n_items: int, item_ids: list[str]):
        super().__init__()
        self.options = options
        self.n_items = n_items
        self.item_ids = item_ids
        self.default_metric = f"ndcg@{options.k}"
        self.offset = nn.Parameter(torch.zeros(n_items)) if options.item_offset else None
        self.log_scale = nn.Parameter(torch.zeros(())) if options.temperature else None

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        if self.log_scale is not None:
            scores = scores * self.log_scale.exp()
        if self.offset is not None:
            scores = scores + self.offset
        pad = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
        pad[0] = True
        return scores.masked_fill(pad, float("-inf"))

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        outputs = outputs.float()
        if targets.dtype == torch.bool and targets.dim() == 3:
            return self._eval_loss(outputs, targets[:, 0], targets[:, 1])
        item = targets.long()
        if self.options.loss == "softmax":
            return F.cross_entropy(outputs, item)
        neg = torch.randint(1, self.n_items, (len(item), self.options.negatives), device=outputs.device)
        pos = outputs.gather(1, item[:, None])
        clash = neg == item[:, None]  # a sampled "negative" that is the positive itself
        negs = outputs.gather(1, neg).masked_fill(clash, float("-inf"))
        if self.options.loss == "sampled_softmax":
            return F.cross_entropy(torch.cat([pos, negs], 1), torch.zeros_like(item))
        pairs = F.logsigmoid(pos - negs)
        return -(torch.where(clash, torch.zeros_like(pairs), pairs).sum(1) / (~clash).sum(1).clamp(min=1)).mean()

    @staticmethod
    def _eval_loss(outputs: torch.Tensor, relevant: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Full-catalogue softmax cross-entropy of the relevant items, known items masked."""
        logp = outputs.masked_fill(known, float("-inf")).log_softmax(-1)
        relevant = relevant & ~known
        per_user = -torch.where(relevant, logp, torch.zeros_like(logp)).sum(1) / relevant.sum(1).clamp(min=1)
        return per_user.mean()

    def evaluator(self) -> Evaluator:
        return RankingEvaluator(self.options.k)

    def predict(self, outputs: torch.Tensor, top_k: int = 3) -> list[list[tuple[str, float]]]:
        probs = outputs.float().softmax(-1)
        values, indices = probs.topk(min(top_k, probs.shape[-1] - 1), dim=-1)
        return [[(self.item_ids[i], float(v)) for v, i in zip(vs.tolist(), ix.tolist()) if v > 0]
                for vs, ix in zip(values, indices)]


class RatingHead(Head):
    """``rating = a * score + b`` (b starts at the mean training rating); MSE;
    MAE and RMSE."""

    default_metric = "rmse"

    def __init__(self, mean_rating: float):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.shift = nn.Parameter(torch.tensor(float(mean_rating)))

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        return scores.reshape(-1) * self.scale + self.shift

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(outputs.float().reshape(targets.shape), targets.float())

    def evaluator(self) -> Evaluator:
        return RegressionEvaluator(("rating",))

    def predict(self, outputs: torch.Tensor, top_k: int = 3) -> list[list[tuple[str, float]]]:
        return [[("rating", float(v))] for v in outputs.reshape(-1).tolist()]


def build_ranking(options: RankingOptions, feature_dim: int, task: TaskInfo, ctx) -> RankingHead:
    names = list(task.class_names or [str(i) for i in range(task.num_outputs)])
    if feature_dim != task.num_outputs:
        raise FtError(f"the ranking head needs one score per catalogue item ({task.num_outputs}) but the "
                      f"backbone gives {feature_dim} features", where="head.type = 'ranking'",
                      hint="use a recommender backbone (mf, two_tower, sasrec)")
    return RankingHead(options, task.num_outputs, names)


def build_rating(options: Options, feature_dim: int, task: TaskInfo, ctx) -> RatingHead:
    return RatingHead(task.extra.get("mean_rating", 0.0))


__all__ = ["ranking_metrics", "ranking_curves", "RankingEvaluator", "RankingHead", "RankingOptions", "RatingHead",
           "build_ranking", "build_rating"]
