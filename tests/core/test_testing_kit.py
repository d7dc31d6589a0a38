"""The conformance kit (ft.testing) catches real breakage, with a message
that names the component and what broke; and its pytest plugin loads cheaply."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

import ft
from ft import _testkit as kit
from ft.contracts import LayerGroup
from ft.freezing import FreezeStrategy
from ft.metrics import ClassificationEvaluator
from ft.specs import BackboneSpec, FreezeStrategySpec, HeadSpec, Options
from ft.testing import check_backbone, check_dataset_format, check_freeze_strategy, check_head


class MissingGroupBackbone(kit.KitBackbone):
    """Leaves the output block out of every layer group."""

    def layer_groups(self):
        return [LayerGroup("embed", list(self.embed.parameters())), LayerGroup("block", list(self.block.parameters()))]


class ShiftingStrategy(FreezeStrategy):
    """Freezes the backbone, then nudges a frozen weight in prepare()."""

    name = "shifty"

    def apply(self, model):
        model.requires_grad_(False)
        model.head.requires_grad_(True)

    def prepare(self, model, data, device):
        with torch.no_grad():
            model.backbone.embed[0].weight.add_(1.0)  # a frozen weight moves after the trainer recorded it

    def finish(self, model, data, device):
        return False


class ForgetfulEvaluator(ClassificationEvaluator):
    """merge() keeps only its own shard's counts."""

    def merge(self, other):
        pass


class BadMergeHead(kit.KitHead):
    def evaluator(self):
        return ForgetfulEvaluator(self.task.num_outputs)


class LooseOptions(Options):
    model_config = {"extra": "ignore"}


class BrokenPlugin:
    @ft.hookimpl
    def ft_backbones(self):
        return [BackboneSpec("missing_group", lambda o, c: MissingGroupBackbone(), sample_options={}),
                BackboneSpec("loose_options", lambda o, c: kit.KitBackbone(), LooseOptions, sample_options={})]

    @ft.hookimpl
    def ft_heads(self):
        return [HeadSpec("bad_merge", lambda o, dim, task, c: BadMergeHead(dim, task), tasks=("classification",))]

    @ft.hookimpl
    def ft_freeze_strategies(self):
        return [FreezeStrategySpec("shifty", lambda o, c: ShiftingStrategy())]


@pytest.fixture
def broken(ft_registry):
    ft_registry.register(BrokenPlugin(), "broken")
    ft_registry.register(kit.KitPlugin(), kit.KIT_PLUGIN)
    return ft_registry


def test_layer_groups_missing_a_parameter_fail_the_backbone_check(broken):
    with pytest.raises(AssertionError) as caught:
        check_backbone("missing_group")
    message = str(caught.value)
    assert "backbone 'missing_group' (plugin broken" in message
    assert "in no layer group" in message and "out.0.weight" in message


def test_options_that_accept_unknown_keys_fail_the_backbone_check(broken):
    with pytest.raises(AssertionError, match="loose_options.*unknown option key 'ft_kit_no_such_option' was accepted"):
        check_backbone("loose_options")


def test_a_strategy_that_moves_a_frozen_weight_fails(broken):
    with pytest.raises(AssertionError) as caught:
        check_freeze_strategy("shifty")
    message = str(caught.value)
    assert "freeze strategy 'shifty' (plugin broken" in message
    assert "frozen parameters changed in training: backbone.embed.0.weight" in message


def test_a_head_whose_evaluator_merge_is_wrong_fails(broken):
    with pytest.raises(AssertionError) as caught:
        check_head("bad_merge")
    message = str(caught.value)
    assert "head 'bad_merge' (plugin broken" in message and "task 'classification'" in message
    assert "evaluator merge is wrong" in message


def test_the_kits_own_components_pass(broken, tmp_path):
    check_backbone(kit.KIT_BACKBONE)
    check_head(kit.KIT_HEAD)
    check_freeze_strategy(kit.KIT_FULL)
    check_dataset_format(kit.KIT_FORMAT, folder=tmp_path)


def test_an_unknown_component_is_an_assertion_naming_it(ft_registry):
    with pytest.raises(AssertionError, match="unknown backbone 'no_such_backbone'"):
        check_backbone("no_such_backbone")


def test_the_pytest_plugin_is_registered_and_imports_no_torch(tmp_path):
    code = ("import sys, importlib.metadata as m; "
            "eps = [e for e in m.entry_points(group='pytest11') if e.name == 'ft']; "
            "assert eps and eps[0].value == 'ft.pytest_plugin', eps; eps[0].load(); "
            "print('torch' in sys.modules)")
    # outside the checkout: its build's ftkit.egg-info would shadow the installed metadata
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "False"


def test_ft_registry_fixture_has_the_installed_plugins(ft_registry, ft_tmp_run):
    assert ft_registry is ft.get_registry()
    assert "linear" in ft_registry.names("ft_heads")
    assert ft_tmp_run.is_dir() and not any(ft_tmp_run.iterdir())
