"""adabn: BatchNorm statistics re-estimated on target-domain inputs recover
the accuracy a domain shift costs; clear errors without BatchNorm or data."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import ft
from ft.plugins.freeze.adabn import adapt_batch_norm

from freeze_testkit import FAST, ShiftOptions, build_shifted


def test_adabn_recovers_accuracy_under_a_domain_shift(transformer, make_recipe, tmp_path):
    # target inputs = source inputs + 3: a shift the first BatchNorm can absorb once it sees target statistics
    sections = dict(data={"format": "shifted_blobs", "shift": 3.0}, train={"epochs": 3, **FAST})
    plain = ft.run(make_recipe(**sections, output={"dir": str(tmp_path / "full")}), quiet=True)
    adapted = ft.run(make_recipe(**sections, freeze={"strategy": "adabn"}, output={"dir": str(tmp_path / "adabn")}),
                     quiet=True)
    assert plain.metrics["test"]["accuracy"] < 0.8
    assert adapted.metrics["test"]["accuracy"] >= 0.95
    assert adapted.metrics["test"]["accuracy"] >= plain.metrics["test"]["accuracy"] + 0.2

    # the first BatchNorm now holds the statistics of the target inputs (the unlabeled split)
    target = build_shifted(ShiftOptions(shift=3.0), None, None).unlabeled.x
    embed = adapted.model.backbone.embed
    with torch.no_grad():
        pre_bn = embed[0](target)
    torch.testing.assert_close(embed[1].running_mean, pre_bn.mean(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(embed[1].running_var, pre_bn.var(0), atol=1e-4, rtol=1e-4)
    assert embed[1].momentum == 0.1  # restored after the pass
    # finish() returned True, so the adapted statistics were saved with the run
    loaded = ft.load_run(adapted.run_dir)
    assert torch.equal(loaded.model.backbone.embed[1].running_mean, embed[1].running_mean)


def test_adapt_batch_norm_is_the_exact_mean_over_examples():
    """A short last batch counts per example; dropout is off during the pass."""
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 3), nn.BatchNorm1d(3))
    backbone.train()
    x = torch.randn(100, 4) * 2 + 5
    used = adapt_batch_norm(backbone, TensorDataset(x, torch.zeros(100)), torch.device("cpu"), batch_size=32)
    assert used == 100
    with torch.no_grad():
        expected = backbone[1](x).mean(0)
    torch.testing.assert_close(backbone[2].running_mean, expected, atol=1e-5, rtol=1e-5)
    assert backbone[0].training and backbone[2].training  # modes restored


def test_adabn_options_and_base(transformer, make_recipe):
    recipe = ft.load_recipe(make_recipe(data={"format": "shifted_blobs"},
                                        freeze={"strategy": "adabn", "base": "linear_probe", "source": "test"}))
    model, bundle, strategy = ft.assemble(recipe)
    strategy.apply(model)
    assert strategy.backbone_frozen(0)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    assert strategy.target_data(bundle) is bundle.test
    assert strategy.describe() == {"strategy": "adabn", "source": "test", "base": "linear_probe", "batch_size": 64}


def test_adabn_without_target_data_fails_before_training(registry, make_recipe, tmp_path):
    with pytest.raises(ft.FtError) as err:
        ft.run(make_recipe(freeze={"strategy": "adabn"}), quiet=True)  # toy_blobs has no unlabeled split
    text = str(err.value)
    assert "freeze.source (strategy 'adabn')" in text
    assert "source = 'unlabeled' but the data has no 'unlabeled' split (splits present: val, test)" in text
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # no epoch was trained


def test_adabn_without_batchnorm_is_a_clear_error(transformer, make_recipe):
    recipe = make_recipe(data={"format": "tokens"}, backbone={"name": "tiny_transformer"},
                         freeze={"strategy": "adabn"})
    with pytest.raises(ft.FtError, match="backbone TinyTransformer has no BatchNorm layer") as err:
        ft.run(recipe, quiet=True)
    assert "LayerNorm" in str(err.value)
