"""Built-in heads for classification, multi-label and regression tasks.

``linear``: dropout + one linear layer. ``mlp``: hidden layers with GELU and
dropout. Either may first standardise its input features
(``input_norm = "batch"``: BatchNorm without affine parameters, as in MAE's
linear probe), which matters when a backbone's features vary little around
large offsets (a transformer's middle layers). The task decides the loss (cross-entropy with optional label
smoothing, binary cross-entropy, MSE / smooth L1) and the metrics.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

import ft
from ft.contracts import BuildContext, Evaluator, Head, TaskInfo
from ft.metrics import ClassificationEvaluator, MultilabelEvaluator, RegressionEvaluator
from ft.specs import HeadSpec, Options


class HeadOptions(Options):
    """Options shared by the built-in heads."""

    dropout: float = Field(0.0, ge=0, lt=1)
    input_norm: Literal["none", "batch"] = Field(
        "none", description="batch: standardise each feature over the batch (BatchNorm1d without affine "
        "parameters; running statistics in evaluation) before the head's layers")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="classification only")
    regression_loss: Literal["mse", "smooth_l1"] = "mse"


class MlpOptions(HeadOptions):
    """Options of the ``mlp`` head."""

    hidden: list[int] = Field(default_factory=lambda: [256], description="hidden layer widths")


class TaskHead(Head):
    """A head whose loss, metrics and predictions follow ``task.type``."""

    def __init__(self, body: nn.Module, task: TaskInfo, options: HeadOptions):
        super().__init__()
        self.body = body
        self.task_type = task.type
        self.num_outputs = task.num_outputs
        self.class_names = list(task.class_names) if task.class_names else [str(i) for i in range(task.num_outputs)]
        self.label_smoothing = options.label_smoothing
        self.regression_loss = options.regression_loss
        # the evaluator declares whether each metric rises or falls (Evaluator.higher_is_better)
        self.default_metric = {"classification": "accuracy", "multilabel": "micro_f1", "regression": "rmse"}[task.type]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (classification, multi-label) or values (regression)."""
        return self.body(features)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy, binary cross-entropy or the regression loss, by task."""
        if self.task_type == "classification":
            return F.cross_entropy(outputs.float(), targets.long(), label_smoothing=self.label_smoothing)
        if self.task_type == "multilabel":
            return F.binary_cross_entropy_with_logits(outputs.float(), targets.float())
        pred = outputs.float().reshape(targets.shape)
        fn = F.mse_loss if self.regression_loss == "mse" else F.smooth_l1_loss
        return fn(pred, targets.float())

    def evaluator(self) -> Evaluator:
        """The task's evaluator; each declares its metrics' directions and,
        labelled with the task's class (label, target) names, its report."""
        if self.task_type == "classification":
            return ClassificationEvaluator(self.num_outputs, self.class_names)
        if self.task_type == "multilabel":
            return MultilabelEvaluator(self.num_outputs, self.class_names)
        return RegressionEvaluator(self.class_names)

    def predict(self, outputs: torch.Tensor, top_k: int = 3) -> list[list[tuple[str, float]]]:
        """Top classes with probabilities, or every target's value (regression)."""
        if self.task_type == "regression":
            return [[(name, float(v)) for name, v in zip(self.class_names, row.reshape(-1).tolist())]
                    for row in outputs]
        probs = outputs.softmax(-1) if self.task_type == "classification" else outputs.sigmoid()
        k = min(top_k, probs.shape[-1])
        values, indices = probs.topk(k, dim=-1)
        return [[(self.class_names[i], float(v)) for v, i in zip(vs.tolist(), ix.tolist())]
                for vs, ix in zip(values, indices)]


class FeatureNorm(nn.BatchNorm1d):
    """BatchNorm1d without affine parameters that also takes a training batch
    of one example (the last of an epoch can be), using the running statistics."""

    def __init__(self, features: int):
        super().__init__(features, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, training=False, eps=self.eps)
        return super().forward(x)


def input_layers(options: HeadOptions, feature_dim: int) -> list[nn.Module]:
    """The optional standardisation in front of a head (``input_norm``)."""
    return [FeatureNorm(feature_dim)] if options.input_norm == "batch" else []


def build_linear(options: HeadOptions, feature_dim: int, task: TaskInfo, ctx: BuildContext) -> TaskHead:
    """The ``linear`` head: ``input_norm``, dropout, then one linear layer."""
    body = nn.Sequential(*input_layers(options, feature_dim), nn.Dropout(options.dropout),
                         nn.Linear(feature_dim, task.num_outputs))
    return TaskHead(body, task, options)


def build_mlp(options: MlpOptions, feature_dim: int, task: TaskInfo, ctx: BuildContext) -> TaskHead:
    """The ``mlp`` head: ``input_norm``, ``options.hidden`` GELU layers with dropout, then a linear layer."""
    layers: list[nn.Module] = input_layers(options, feature_dim)
    width = feature_dim
    for hidden in options.hidden:
        layers += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(options.dropout)]
        width = hidden
    layers.append(nn.Linear(width, task.num_outputs))
    return TaskHead(nn.Sequential(*layers), task, options)


@ft.hookimpl
def ft_heads() -> list[HeadSpec]:
    """The built-in heads: ``linear`` and ``mlp``."""
    return [
        HeadSpec("linear", build_linear, HeadOptions, description="dropout + linear layer"),
        HeadSpec("mlp", build_mlp, MlpOptions, description="MLP with GELU and dropout"),
    ]
