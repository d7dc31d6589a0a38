"""The assembled model: a backbone and a head, whatever the domain."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .contracts import Backbone, Evaluator, Head, LayerGroup, TaskInfo


class FtModel(nn.Module):
    """``head(backbone(inputs))`` plus the head's task semantics.

    ``forward_features`` and ``forward_head`` are separate so a frozen
    backbone's features can be computed once and cached.
    """

    def __init__(self, backbone: Backbone, head: Head, task: TaskInfo):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.task = task

    def forward(self, inputs: Any) -> torch.Tensor:
        return self.head(self.backbone(inputs))

    def forward_features(self, inputs: Any) -> torch.Tensor:
        return self.backbone(inputs)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.head.loss(outputs, targets)

    def evaluator(self) -> Evaluator:
        return self.head.evaluator()

    def layer_groups(self) -> list[LayerGroup]:
        """Backbone groups (input to output) then the head."""
        return [*self.backbone.layer_groups(), LayerGroup("head", list(self.head.parameters()))]
