"""Run reports: what the evaluators declare, what lands in the run directory
and the model card, and that sharded evaluation reports what one process does.

The figures are checked against an independent computation: the model's own
predictions counted by scikit-learn.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

import ft
from ft.metrics import ClassificationEvaluator, MultilabelEvaluator, PairSample, RegressionEvaluator
from ft.plugins.recommender.heads import RankingEvaluator, ranking_metrics
from ft.report import read_index, write_reports

from ddp_testkit import outcome, run_jobs
from toy_plugin import BlobOptions, make_blobs


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def split_data(data: dict, task: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The toy data's ``split`` as the toy format builds it (independently of the run)."""
    options = BlobOptions(**data)
    x, y = make_blobs(options, task)
    a, b = options.n_train, options.n_train + options.n_val
    return (x[a:b], y[a:b]) if split == "val" else (x[b:], y[b:])


@torch.no_grad()
def predictions(model, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return model(x)


# -- classification, end to end ------------------------------------------------------


@pytest.fixture
def classified(registry, make_recipe):
    """A finished toy classification run on overlapping blobs (so it makes mistakes)."""
    data = {"n_classes": 4, "spread": 2.5, "n_train": 160, "n_val": 60, "n_test": 61}
    result = ft.run(make_recipe(data=data, train={"epochs": 2}), quiet=True)
    return result, data


def test_classification_report_equals_an_independent_count(classified):
    result, data = classified
    folder = result.run_dir / "report"
    names = [f"class_{i}" for i in range(4)]
    for split in ("val", "test"):
        x, y = split_data(data, "classification", split)
        predicted = predictions(result.model, x).argmax(-1)
        header, rows = read_csv(folder / f"confusion_{split}.csv")
        assert header == ["true \\ predicted", *names] and [r[0] for r in rows] == names
        assert [[int(v) for v in r[1:]] for r in rows] == confusion_matrix(y, predicted, labels=range(4)).tolist()
        assert confusion_matrix(y, predicted).trace() < len(y)  # the check means something: there are errors

        header, rows = read_csv(folder / f"per_class_{split}.csv")
        assert header == ["class", "precision", "recall", "f1", "support"]
        expected = precision_recall_fscore_support(y, predicted, labels=range(4), zero_division=0)
        for column, values in enumerate(expected, start=1):
            assert [float(r[column]) for r in rows] == pytest.approx(list(values), abs=1e-12)
        assert (folder / f"confusion_{split}.png").stat().st_size > 1000
    assert sorted(result.summary["report"]) == sorted(
        f"report/{name}_{split}.{ext}" for split in ("val", "test")
        for name, ext in (("confusion", "csv"), ("confusion", "png"), ("per_class", "csv"))) + ["report/report.json"]
    # the summary on disk lists them too
    assert json.loads((result.run_dir / "summary.json").read_text())["report"] == result.summary["report"]


def test_the_model_card_shows_the_per_class_tables(classified):
    result, _ = classified
    card = (result.run_dir / "MODEL_CARD.md").read_text()
    report = card[card.index("## Report"):card.index("## Reproduce")]
    assert report.index("### val") < report.index("### test")
    assert report.count("| class | precision | recall | f1 | support |") == 2
    _, rows = read_csv(result.run_dir / "report" / "per_class_test.csv")
    for name, precision, recall, f1, support in rows:  # the card's rows are the CSV's, rounded
        assert f"| {name} | {float(precision):.4f} | {float(recall):.4f} | {float(f1):.4f} | {support} |" in report
    assert "(report/confusion_val.png)" in report and "(report/confusion_test.png)" in report
    accuracy = result.metrics["test"]["accuracy"]
    assert f"accuracy {accuracy:.4f}" in report


def test_ft_eval_rewrites_that_splits_report_only(classified):
    result, _ = classified
    folder = result.run_dir / "report"
    before = (folder / "per_class_test.csv").read_text()
    (folder / "per_class_test.csv").unlink()
    (folder / "confusion_test.png").unlink()
    val_time = (folder / "per_class_val.csv").stat().st_mtime_ns
    metrics = ft.evaluate_run(result.run_dir, "test")
    assert metrics == pytest.approx(result.metrics["test"], rel=1e-6)
    assert (folder / "per_class_test.csv").read_text() == before and (folder / "confusion_test.png").exists()
    assert (folder / "per_class_val.csv").stat().st_mtime_ns == val_time
    assert set(read_index(result.run_dir)["splits"]) == {"val", "test"}


def test_a_report_is_replaced_whole(tmp_path):
    """finish() writes the report folder aside and swaps it in: no file of an
    earlier report survives, and no temporary folder is left."""
    evaluator = ClassificationEvaluator(2, ("a", "b"))
    evaluator.update(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "per_class_train.csv").write_text("stale\n")
    files = write_reports(tmp_path, {"val": evaluator.report(), "test": None})
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == sorted(Path(f).name for f in files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


# -- regression, end to end ---------------------------------------------------------------


def test_regression_report_plots_the_models_predictions(registry, make_recipe):
    data = {"n_train": 120, "n_val": 30, "n_test": 31}
    result = ft.run(make_recipe(task={"type": "regression"}, data=data, train={"epochs": 2}), quiet=True)
    folder = result.run_dir / "report"
    for split in ("val", "test"):
        x, y = split_data(data, "regression", split)
        predicted = predictions(result.model, x).reshape(-1)
        header, rows = read_csv(folder / f"pred_vs_true_{split}.csv")
        assert header == ["target", "true", "predicted"] and {r[0] for r in rows} == {"value"}
        got = torch.tensor(sorted((float(t), float(p)) for _, t, p in rows), dtype=torch.float64)
        want = torch.tensor(sorted(zip(y.double().tolist(), predicted.double().tolist())), dtype=torch.float64)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
        assert (folder / f"pred_vs_true_{split}.png").stat().st_size > 1000
    card = (result.run_dir / "MODEL_CARD.md").read_text()
    assert "(report/pred_vs_true_test.png)" in card and f"{len(x)} values: MAE" in card


# -- the evaluators' report content -----------------------------------------------------


def test_multilabel_report_is_per_label_f1_as_scikit_learn_counts_it():
    g = torch.Generator().manual_seed(0)
    targets = (torch.rand(50, 5, generator=g) < 0.4).float()
    targets[:, 4] = 0  # label "e": never present ...
    logits = torch.randn(50, 5, generator=g) + 2 * (targets - 0.5)
    logits[:, 4] = -1.0  # ... nor predicted
    evaluator = MultilabelEvaluator(5, list("abcde"))
    for rows in torch.arange(50).split(16):
        evaluator.update(logits[rows], targets[rows])
    table = evaluator.report().tables[0]
    assert table.name == "per_label" and table.columns == ["label", "precision", "recall", "f1", "support"]
    expected = precision_recall_fscore_support(targets.int(), (logits > 0).int(), average=None, zero_division=1.0)
    assert [row[0] for row in table.rows] == list("abcde")
    for column, values in enumerate(expected, start=1):
        assert [row[column] for row in table.rows] == pytest.approx(list(values), abs=1e-12)
    assert evaluator.compute()["macro_f1"] == pytest.approx(sum(row[3] for row in table.rows) / 5, abs=1e-12)


def ranking_batch(seed: int, users: int = 12, items: int = 70) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(users, items, generator=g)
    relevant = torch.rand(users, items, generator=g) < 0.05
    relevant[0] = False  # a user without a relevant item: skipped
    known = torch.rand(users, items, generator=g) < 0.1
    return scores, torch.stack([relevant, known], 1)


def test_ranking_report_is_every_k_from_1_to_50():
    batches = [ranking_batch(seed) for seed in range(3)]
    evaluator = RankingEvaluator(k=10)
    for scores, targets in batches:
        evaluator.update(scores, targets)
    table = evaluator.report().tables[0]
    assert [row[0] for row in table.rows] == list(range(1, 51))
    assert table.rows[9][1:] == pytest.approx([evaluator.compute()[f"{m}@10"] for m in ("ndcg", "recall", "hit")],
                                              abs=1e-12)
    for k in (1, 7, 50):  # each K as ranking_metrics computes it on its own
        per_user = {name: [] for name in ("ndcg", "recall", "hit")}
        for scores, targets in batches:
            for key, values in ranking_metrics(scores, targets[:, 0], targets[:, 1], k).items():
                per_user[key.split("@")[0]] += values[~values.isnan()].tolist()
        assert table.rows[k - 1][1:] == pytest.approx([sum(v) / len(v) for v in per_user.values()], abs=1e-12)
    assert list(table.card_rows) == [k - 1 for k in (1, 5, 10, 20, 50)]


def interleaved(make, batches: list) -> tuple:
    """One evaluator over every batch, and two "ranks" (batches r, r + 2, ...)
    merged as evaluation merges them."""
    whole, ranks = make(), [make(), make()]
    for i, (outputs, targets) in enumerate(batches):
        whole.update(outputs, targets)
        ranks[i % 2].update(outputs, targets)
    ranks[0].merge(ranks[1].to_cpu())
    return whole, ranks[0]


def small_sample() -> RegressionEvaluator:
    evaluator = RegressionEvaluator(("y", "z"))
    evaluator.pairs = PairSample(cap=25)  # fewer than the 2 x 40 values: the sample must not depend on sharding
    return evaluator


MERGES = {
    "classification": (lambda: ClassificationEvaluator(3),
                       lambda g: (torch.randn(8, 3, generator=g), torch.randint(0, 3, (8,), generator=g))),
    "multilabel": (lambda: MultilabelEvaluator(4),
                   lambda g: (torch.randn(8, 4, generator=g), (torch.rand(8, 4, generator=g) < 0.5).float())),
    "regression": (small_sample, lambda g: (torch.randn(8, 2, generator=g), torch.randn(8, 2, generator=g))),
    "ranking": (lambda: RankingEvaluator(k=5), lambda g: ranking_batch(int(torch.randint(0, 99, (1,), generator=g)))),
}


@pytest.mark.parametrize("task", list(MERGES))
def test_a_merged_report_is_one_processes_exactly(task):
    make, batch = MERGES[task]
    g = torch.Generator().manual_seed(1)
    whole, merged = interleaved(make, [batch(g) for _ in range(5)])
    one, two = whole.report(), merged.report()
    assert one.summary == two.summary
    assert [(t.name, t.columns, t.rows) for t in one.tables] == [(t.name, t.columns, t.rows) for t in two.tables]
    assert [vars(f) for f in one.figures] == [vars(f) for f in two.figures]


def test_the_regression_sample_is_capped_and_keeps_what_it_saw():
    sample = PairSample(cap=100)
    for start in range(0, 1000, 64):
        values = torch.arange(start, min(start + 64, 1000), dtype=torch.float64)
        sample.add(torch.zeros_like(values), values, values + 0.5)
    triples = sample.triples()
    assert sample.seen == 1000 and len(triples) == 100
    assert all(p == t + 0.5 for _, t, p in triples) and len({t for _, t, _ in triples}) == 100
    assert min(t for _, t, _ in triples) < 200 and max(t for _, t, _ in triples) > 800  # spread, not the first 100


# -- two ranks ------------------------------------------------------------------------


def test_a_two_rank_evaluation_writes_one_processes_report(classified, tmp_path):
    """``ft eval`` on 2 gloo ranks (each half of the batches, evaluators
    merged) writes the very report files one process writes."""
    result, _ = classified
    folder = result.run_dir / "report"
    jobs = [{"name": "eval", "action": "eval", "run_dir": str(result.run_dir), "split": "test"}]
    written = {}
    for ranks in (2, 1):
        for f in folder.glob("*_test.*"):
            f.unlink()
        if ranks == 2:
            run_jobs(jobs, tmp_path / "out", nproc=2)
            assert "error" not in outcome(tmp_path / "out", "eval")
        else:
            ft.evaluate_run(result.run_dir, "test")
        written[ranks] = {f.name: f.read_bytes() for f in folder.glob("*_test.csv")}
    assert sorted(written[2]) == ["confusion_test.csv", "per_class_test.csv"]
    assert written[2] == written[1]
