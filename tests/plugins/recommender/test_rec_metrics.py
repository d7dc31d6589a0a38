"""Full-catalogue ranking metrics on hand-computed examples, and the
MovieLens-100k popularity cross-check (NDCG@10 = 0.406) that proves the
cold-start split and the metric together."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ft.plugins.recommender.heads import RankingEvaluator, RankingHead, RankingOptions, ranking_metrics

from rec_testkit import needs_ml100k

# column 0 is padding; items 1..5 score 0.9 down to 0.5
SCORES = torch.tensor([[5.0, 0.9, 0.8, 0.7, 0.6, 0.5]])


def mask(*items: int, n: int = 6) -> torch.Tensor:
    out = torch.zeros(1, n, dtype=torch.bool)
    out[0, list(items)] = True
    return out


def test_ndcg_recall_hit_by_hand():
    relevant, exclude = mask(2, 4), mask(1)
    # ranking without item 1 (known): 2, 3, 4, 5 -> hits at ranks 1 and 3
    m = ranking_metrics(SCORES, relevant, exclude, k=2)
    assert m["ndcg@2"].item() == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert m["recall@2"].item() == pytest.approx(0.5) and m["hit@2"].item() == 1.0
    m = ranking_metrics(SCORES, relevant, exclude, k=3)
    assert m["ndcg@3"].item() == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    assert m["recall@3"].item() == pytest.approx(1.0)


def test_training_items_are_excluded_and_padding_never_ranks():
    # column 0 has the top score but is padding; without exclusion item 1 takes rank 1
    m = ranking_metrics(SCORES, mask(2, 4), mask(), k=2)
    assert m["ndcg@2"].item() == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    # a relevant item that is also known cannot be recommended and does not count
    m = ranking_metrics(SCORES, mask(1, 5), mask(1), k=3)
    assert m["recall@3"].item() == pytest.approx(0.0)
    assert m["ndcg@3"].item() == pytest.approx(0.0)


def test_ideal_dcg_uses_min_of_relevant_and_k():
    relevant = mask(1, 2, 3, 4, 5)
    m = ranking_metrics(SCORES, relevant, mask(), k=2)
    assert m["ndcg@2"].item() == pytest.approx(1.0)  # ideal over 2 items, not 5
    assert m["recall@2"].item() == pytest.approx(2 / 5)


def test_evaluator_averages_users_and_skips_users_without_relevant_items():
    scores = SCORES.repeat(3, 1)
    targets = torch.zeros(3, 2, 6, dtype=torch.bool)
    targets[0, 0, 2] = True  # rank 1 after excluding item 1
    targets[0, 1, 1] = True
    targets[1, 0, 5] = True  # rank 5: a miss at k = 3
    targets[2, 0, 1] = targets[2, 1, 1] = True  # relevant only through a known item: skipped
    ev = RankingEvaluator(k=3)
    ev.update(scores[:2], targets[:2])
    ev.update(scores[2:], targets[2:])
    out = ev.compute()
    assert out == pytest.approx({"ndcg@3": 0.5, "recall@3": 0.5, "hit@3": 0.5})


def test_ranking_head_losses_and_eval_loss():
    torch.manual_seed(0)
    outputs = torch.randn(4, 6, requires_grad=True)
    items = torch.tensor([1, 2, 3, 5])
    for loss in ("softmax", "sampled_softmax", "bpr"):
        head = RankingHead(RankingOptions(loss=loss, negatives=3), 6, [str(i) for i in range(6)])
        value = head.loss(head(outputs), items)
        assert value.ndim == 0 and torch.isfinite(value)
        value.backward()
        assert torch.isfinite(outputs.grad).all() and outputs.grad[:, 0].abs().sum() == 0  # padding gets no gradient
        outputs.grad = None
    head = RankingHead(RankingOptions(item_offset=False, temperature=False), 6, [str(i) for i in range(6)])
    targets = torch.stack([torch.cat([mask(2), mask(1)]), torch.cat([mask(4, 5), mask()])])
    logp = head(SCORES.repeat(2, 1))
    first = -torch.log_softmax(SCORES[0, 2:], 0)[0]  # items 2..5 compete (1 known, 0 padding)
    second = -torch.log_softmax(SCORES[0, 1:], 0)[[3, 4]].mean()
    assert head.loss(logp, targets).item() == pytest.approx(((first + second) / 2).item(), rel=1e-5)


@needs_ml100k
def test_popularity_cross_check_movielens_100k():
    """At the 80% timestamp quantile, 192 users appear only after the cutoff
    (each with >= 20 ratings). With their first 5 interactions known and the
    catalogue minus those ranked by popularity (pretraining period + those
    first interactions), NDCG@10 over all their later items is 0.406."""
    from ft.contracts import BuildContext
    from ft.plugins.recommender import data as rec_data
    from ft.plugins.recommender.baselines import popularity_metrics, popularity_scores

    options = rec_data.AtomicOptions(split="by_user", cutoff=0.8, k=5)
    bundle = rec_data.build_bundle("recbole_atomic", options, None, BuildContext(task_type="ranking"))
    inter, sp = rec_data.load("recbole_atomic", options)
    assert sp.facts["cold_users"] == 192 and len(bundle.test) == 192 and bundle.val is None
    counts = {u: int((inter.users == u).sum()) for u in set(inter.users[sp.test].tolist())}
    assert min(counts.values()) >= 20
    assert all(len(bundle.train.target[bundle.train.user == u]) == 5 for u in bundle.train.user.unique().tolist())
    index = {x: i + 1 for i, x in enumerate(bundle.info["vocab"]["item"])}
    items = np.array([index[x] for x in inter.items.tolist()])
    scores = popularity_scores(items, np.concatenate([sp.before, sp.train]), bundle.task.num_outputs)
    out = popularity_metrics(bundle.test, scores)
    assert out["ndcg@10"] == pytest.approx(0.406, abs=1e-3)
