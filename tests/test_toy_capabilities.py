"""The toy backbone's capabilities: activation checkpointing through
``ft.activation_checkpointing.checkpoint_modules`` and one FSDP unit per block."""

from __future__ import annotations

import copy

import torch

from ft.activation_checkpointing import is_checkpointed

from capability_testkit import assert_checkpointing_exact, assert_fsdp_units, train_step
from toy_plugin import IN_DIM, ToyBackbone


def toy() -> ToyBackbone:
    torch.manual_seed(0)
    return ToyBackbone(width=32, feature_dim=16)


def test_checkpointing_keeps_loss_and_gradients_and_recomputes_each_block():
    inputs = torch.randn(8, IN_DIM)
    backbone = toy()
    for probe in ("embed.0", "block1.0", "block2.0"):
        assert_checkpointing_exact(backbone, inputs, probe)
    backbone.enable_activation_checkpointing()
    backbone.enable_activation_checkpointing()  # twice is harmless
    assert all(is_checkpointed(m) for m in (backbone.embed, backbone.block1, backbone.block2))


def test_checkpointed_blocks_run_once_in_eval_and_without_gradients():
    backbone = toy()
    backbone.enable_activation_checkpointing()
    calls = [0]
    backbone.block1[0].register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    inputs = torch.randn(4, IN_DIM)
    backbone.eval()
    backbone(inputs).sum().backward()
    backbone.train()
    with torch.no_grad():
        backbone(inputs)
    assert calls[0] == 2


def test_checkpointed_backbone_survives_deepcopy():
    backbone = toy()
    backbone.enable_activation_checkpointing()
    clone = copy.deepcopy(backbone)
    assert is_checkpointed(clone.block1)
    loss, grads = train_step(clone, torch.randn(4, IN_DIM))
    assert set(grads) == {n for n, _ in clone.named_parameters()}
    assert clone.block1[0].weight.grad is not None and backbone.block1[0].weight.grad is None


def test_checkpointing_updates_batchnorm_statistics_once():
    inputs = torch.randn(8, IN_DIM)
    plain, ckpt = toy(), toy()
    ckpt.enable_activation_checkpointing()
    train_step(plain, inputs)
    train_step(ckpt, inputs)
    torch.testing.assert_close(ckpt.embed[1].num_batches_tracked, plain.embed[1].num_batches_tracked)
    torch.testing.assert_close(ckpt.embed[1].running_mean, plain.embed[1].running_mean)


def test_fsdp_units_are_the_three_blocks_in_order():
    backbone = toy()
    units = assert_fsdp_units(backbone, torch.randn(4, IN_DIM))
    assert units == [backbone.embed, backbone.block1, backbone.block2]


def test_toy_has_no_tokens():
    assert toy().tokens_in(torch.randn(4, IN_DIM)) is None
