"""Vision backbones' capabilities: activation checkpointing of timm's
stages (exact gradients, blocks recomputed), an FtError where a model has
neither stages nor timm's switch, FSDP units = timm's stages."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ft.contracts import BuildContext
from ft.errors import FtError
from ft.plugins.vision.backbones import Lite0Options, TimmBackbone, TimmOptions, build_lite0, build_timm

from capability_testkit import assert_checkpointing_exact, assert_fsdp_units

CTX = BuildContext()


def images(n: int = 4, size: int = 64) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def lite0():
    return build_lite0(Lite0Options(), CTX)


def test_lite0_checkpointing_keeps_loss_and_gradients(lite0):
    """Packaged ImageNet weights, train mode (batch-norm on batch statistics):
    each block of ``blocks`` runs again in backward, gradients are unchanged."""
    runs = assert_checkpointing_exact(lite0, images(), probe="model.blocks.3.1.conv_pw")
    assert len(runs["plain"]["grads"]) == sum(1 for _ in lite0.parameters())


def test_resnet_checkpointing_keeps_loss_and_gradients():
    backbone = build_timm(TimmOptions(model="resnet18", weights="random"), CTX)
    assert_checkpointing_exact(backbone, images(), probe="model.layer2.1.conv1")


def test_stages_are_checkpointed_where_timm_has_no_switch():
    """DLA refuses timm's set_grad_checkpointing (``assert not enable``);
    ftkit checkpoints its stages instead, with exact gradients."""
    backbone = build_timm(TimmOptions(model="dla46_c", weights="random"), CTX)
    assert_checkpointing_exact(backbone, images(), probe="model.level3.tree1.tree1.conv1")


def test_a_timm_model_without_stages_or_switch_is_an_ft_error():
    class NoSwitch(nn.Module):  # a timm-like model without set_grad_checkpointing at all
        num_features = 4

    bare = TimmBackbone(NoSwitch(), "no_switch", "random", {})
    with pytest.raises(FtError, match="backbone 'no_switch' \\(timm\\) cannot checkpoint"):
        bare.enable_activation_checkpointing()


def module_names(backbone, units) -> list[str]:
    names = {id(m): n for n, m in backbone.named_modules()}
    return [names[id(u)] for u in units]


def test_lite0_fsdp_units_are_its_seven_stages(lite0):
    units = assert_fsdp_units(lite0, images(2))
    assert module_names(lite0, units) == [f"model.blocks.{i}" for i in range(7)]
    # the stem (conv_stem + bn1) and conv_head / bn2 stay with the root
    inside = {id(p) for u in units for p in u.parameters()}
    assert id(lite0.model.conv_stem.weight) not in inside and id(lite0.model.conv_head.weight) not in inside


@pytest.mark.parametrize("model, size, expected", [
    ("resnet18", 64, [f"model.layer{i}" for i in range(1, 5)]),
    ("convnext_atto", 64, ["model.stem"] + [f"model.stages.{i}" for i in range(4)]),
    ("vit_tiny_patch16_224", 224, [f"model.blocks.{i}" for i in range(12)]),
])
def test_fsdp_units_follow_timm_stages_across_families(model, size, expected):
    backbone = build_timm(TimmOptions(model=model, weights="random"), CTX)
    assert module_names(backbone, assert_fsdp_units(backbone, images(1, size))) == expected


def test_fsdp_units_are_empty_without_multi_layer_stages():
    """No group_matcher and only single layers: the backbone stays one piece."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model.num_features = 4
    assert TimmBackbone(model, "flat", "random", {}).fsdp_units() == []


def test_images_have_no_tokens(lite0):
    assert lite0.tokens_in(images(1)) is None
