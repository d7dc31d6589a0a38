"""Recommender backbones' capabilities: SASRec's blocks and the two towers'
MLPs checkpointed with exact gradients, MF's clear refusal, FSDP units =
SASRec's blocks."""

from __future__ import annotations

import pytest
import torch

from ft.activation_checkpointing import is_checkpointed
from ft.contracts import BuildContext, TaskInfo
from ft.errors import FtError
from ft.plugins.recommender.models import (MatrixFactorization, MfOptions, SasRec, SasRecOptions, TwoTower,
                                           TwoTowerOptions)

from capability_testkit import assert_checkpointing_exact, assert_fsdp_units

N_USERS, N_ITEMS, BATCH = 12, 40, 6


def bound(backbone):
    """The backbone with its tables sized for 12 users and 40 items (ranking)."""
    info = {"vocab": {"user": [f"u{i}" for i in range(N_USERS)], "item": [f"i{i}" for i in range(N_ITEMS)]}}
    backbone.bind_data(TaskInfo("ranking", N_ITEMS + 1), info)
    return backbone


def user_batch(history: int) -> dict[str, torch.Tensor]:
    """Users with left-padded histories of 1..history items."""
    g = torch.Generator().manual_seed(0)
    items = torch.randint(1, N_ITEMS + 1, (BATCH, history), generator=g)
    lengths = torch.randint(1, history + 1, (BATCH,), generator=g)
    padded = torch.arange(history)[None] < (history - lengths)[:, None]
    return {"user": torch.randint(1, N_USERS + 1, (BATCH,), generator=g), "history": items.masked_fill(padded, 0)}


def sasrec(**options) -> SasRec:
    return bound(SasRec(SasRecOptions(dim=16, max_history=8, **options), BuildContext()))


def test_sasrec_checkpointing_keeps_loss_and_gradients():
    """Dropout 0.2 in the blocks and their attention (same seed each run)."""
    backbone = sasrec(layers=3)
    assert backbone.options.dropout > 0
    for probe in ("blocks.0.q", "blocks.2.mlp.0"):
        assert_checkpointing_exact(backbone, user_batch(8), probe)
    backbone.enable_activation_checkpointing()
    assert all(is_checkpointed(b) for b in backbone.blocks)


def test_sasrec_fsdp_units_are_its_blocks():
    backbone = sasrec(layers=3)
    assert assert_fsdp_units(backbone, user_batch(8)) == list(backbone.blocks)


def test_two_tower_checkpointing_keeps_loss_and_gradients():
    backbone = bound(TwoTower(TwoTowerOptions(dim=8, hidden=16, history=5, dropout=0.2), BuildContext()))
    for probe in ("item_tower.0", "user_tower.0"):  # not a last layer: recompute stops once it has what backward needs
        assert_checkpointing_exact(backbone, user_batch(5), probe)
    assert backbone.fsdp_units() == []  # two small MLPs beside the tables: sharded as one piece


def test_mf_cannot_checkpoint_and_says_so():
    backbone = bound(MatrixFactorization(MfOptions(dim=8), BuildContext()))
    with pytest.raises(FtError, match="backbone mf cannot checkpoint its activations") as err:
        backbone.enable_activation_checkpointing()
    assert "train.activation_checkpointing = false" in str(err.value)
    assert backbone.fsdp_units() == [] and backbone.tokens_in(user_batch(5)) is None
