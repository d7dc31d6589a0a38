"""The most-popular baseline, scored with the same metric code as the models.

Popularity is strong on MovieLens: a fine-tuned model has to beat it to be
worth anything. ``popularity_metrics`` counts interactions per item over
the given rows (for the cold-start split: everything before the cutoff plus
the cold users' first k) and ranks the full catalogue by count for every
evaluated user, minus their known items.
"""

from __future__ import annotations

import numpy as np
import torch

from .heads import RankingEvaluator


def popularity_scores(items: np.ndarray, rows: np.ndarray, n_items: int) -> torch.Tensor:
    """Interaction counts per item index over ``rows``, ties broken toward the
    lower index (so the ranking is deterministic); index 0 is padding."""
    counts = np.bincount(items[rows], minlength=n_items).astype(np.float64)
    counts -= np.arange(n_items) * 1e-9
    return torch.as_tensor(counts)


def popularity_metrics(dataset, scores: torch.Tensor, k: int = 10) -> dict[str, float]:
    """Mean ranking metrics of one fixed score vector over an evaluation
    dataset (``EvalUsers``: bool targets ``[2, n_items]`` per user)."""
    evaluator = RankingEvaluator(k)
    for start in range(0, len(dataset), 256):
        batch = [dataset[i][1] for i in range(start, min(len(dataset), start + 256))]
        targets = torch.stack(batch)
        evaluator.update(scores.expand(len(batch), -1), targets)
    return evaluator.compute()
