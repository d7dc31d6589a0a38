"""Metric directions are declared by evaluators, never guessed from names:
best/ and early stopping follow the declaration, and a watched metric
nobody declares is an error that says what to set."""

from __future__ import annotations

import json

import pytest
import torch

import ft
from ft.metrics import ClassificationEvaluator, MultilabelEvaluator, RegressionEvaluator
from ft.plugins.heads import HeadOptions, TaskHead, build_linear
from ft.plugins.recommender.heads import RankingEvaluator


class DeclaredOptions(HeadOptions):
    # None: the evaluator declares nothing
    accuracy_higher: bool | None = True


class DeclaredEvaluator(ClassificationEvaluator):
    """Accuracy and macro-F1 with whatever direction the test declares."""

    def __init__(self, num_classes: int, higher: bool | None):
        super().__init__(num_classes)
        self.higher_is_better = {} if higher is None else {"accuracy": higher, "macro_f1": higher}


class DeclaredHead(TaskHead):
    def __init__(self, head: TaskHead, higher: bool | None):
        super().__init__(head.body, ft.TaskInfo("classification", head.num_outputs), HeadOptions())
        self.higher = higher

    def evaluator(self) -> DeclaredEvaluator:
        return DeclaredEvaluator(self.num_outputs, self.higher)


class DeclaredPlugin:
    @ft.hookimpl
    def ft_heads(self) -> list[ft.HeadSpec]:
        build = lambda o, dim, task, ctx: DeclaredHead(build_linear(o, dim, task, ctx), o.accuracy_higher)
        return [ft.HeadSpec("declared", build, DeclaredOptions, tasks=("classification",))]


@pytest.fixture
def declared(registry):
    registry.register(DeclaredPlugin(), "declared")
    return registry


def _history(result: ft.Result) -> list[dict]:
    return [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]


def _recipe(make_recipe, higher, **train):
    # wide blobs and a high rate: validation accuracy moves both ways over the epochs
    return make_recipe(head={"type": "declared", "accuracy_higher": higher}, data={"spread": 2.5, "n_train": 64, "n_val": 40, "n_test": 8},
                       optim={"lr": 0.3}, train={"epochs": 4, "checkpoint": False, **train})


@pytest.mark.parametrize("higher", [False, True])
def test_declared_direction_picks_the_best_epoch(declared, make_recipe, higher):
    result = ft.run(_recipe(make_recipe, higher), quiet=True)
    values = {row["epoch"]: row["val_accuracy"] for row in _history(result)}
    assert min(values.values()) < max(values.values())  # otherwise any choice would pass
    pick = min if not higher else max
    best_epoch = pick(values, key=values.get)
    assert result.summary["monitor"] == "val_accuracy"
    assert result.summary["best_epoch"] == best_epoch
    assert result.summary["settings"]["monitor"] == f"val_accuracy ({'max' if higher else 'min'})"
    # best/ holds that epoch's weights: the final validation pass reproduces its value
    assert result.metrics["val"]["accuracy"] == pytest.approx(values[best_epoch])


def test_undeclared_metric_asks_for_monitor_mode(declared, make_recipe):
    with pytest.raises(ft.FtError) as caught:
        ft.run(_recipe(make_recipe, None), quiet=True)
    error = caught.value
    assert "'accuracy'" in error.message and "DeclaredEvaluator" in error.message
    assert "train.monitor_mode" in error.hint and "higher_is_better" in error.hint
    assert "DeclaredHead" in error.where


def test_monitor_mode_in_the_recipe_needs_no_declaration(declared, make_recipe):
    result = ft.run(_recipe(make_recipe, None, monitor="val_macro_f1", monitor_mode="min"), quiet=True)
    values = {row["epoch"]: row["val_macro_f1"] for row in _history(result)}
    assert result.summary["best_epoch"] == min(values, key=values.get)


def test_undeclared_train_monitor_names_the_key(registry, make_recipe):
    with pytest.raises(ft.FtError) as caught:
        ft.run(make_recipe(train={"monitor": "val_top5", "epochs": 1}), quiet=True)
    assert caught.value.where == "train.monitor"
    assert "accuracy, macro_f1" in caught.value.message  # what the evaluator does declare


def test_loss_is_lower_is_better_by_definition(declared, make_recipe):
    result = ft.run(_recipe(make_recipe, None, monitor="val_loss"), quiet=True)
    values = {row["epoch"]: row["val_loss"] for row in _history(result)}
    assert result.summary["best_epoch"] == min(values, key=values.get)


def _outputs_and_targets():
    torch.manual_seed(0)
    return torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, 2])


@pytest.mark.parametrize("make", [
    lambda: ClassificationEvaluator(4), lambda: MultilabelEvaluator(4), lambda: RegressionEvaluator(),
    lambda: RankingEvaluator(k=2),
], ids=["classification", "multilabel", "regression", "ranking"])
def test_every_builtin_evaluator_declares_each_of_its_metrics(make):
    evaluator = make()
    outputs, targets = _outputs_and_targets()
    if isinstance(evaluator, MultilabelEvaluator):
        targets = torch.nn.functional.one_hot(targets, 4).float()
    elif isinstance(evaluator, RegressionEvaluator):
        outputs, targets = outputs[:, 0], targets.float()
    evaluator.update(outputs, targets)
    assert set(evaluator.compute()) == set(evaluator.higher_is_better)
