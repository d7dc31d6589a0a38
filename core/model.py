"""The assembled model: a backbone and a head, whatever the domain."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .contracts import HEAD_GROUP, Backbone, Evaluator, Head, LayerGroup, TaskInfo


class FtModel(nn.Module):
    """``head(backbone(inputs))`` plus the head's task semantics.

    ``forward_features`` and ``forward_head`` are separate so a frozen
    backbone's features can be computed once and cached. Built by
    :func:`ft.build_model` / :func:`ft.run` from a recipe, or by hand::

        model = ft.FtModel(backbone, head, task)
    """

    def __init__(self, backbone: Backbone, head: Head, task: TaskInfo):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.task = task

    def forward(self, inputs: Any) -> torch.Tensor:
        """Outputs for a batch of inputs: ``head(backbone(inputs))``."""
        return self.head(self.backbone(inputs))

    def forward_features(self, inputs: Any) -> torch.Tensor:
        """The backbone's pooled features ``[B, feature_dim]``."""
        return self.backbone(inputs)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """The head's outputs for (possibly cached) features."""
        return self.head(features)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The head's mean loss over a batch."""
        return self.head.loss(outputs, targets)

    def evaluator(self) -> Evaluator:
        """A fresh evaluator from the head, for one pass over a split."""
        return self.head.evaluator()

    def layer_groups(self) -> list[LayerGroup]:
        """Backbone groups (input to output) then the head's, :data:`ft.HEAD_GROUP`."""
        return [*self.backbone.layer_groups(), LayerGroup(HEAD_GROUP, list(self.head.parameters()))]
