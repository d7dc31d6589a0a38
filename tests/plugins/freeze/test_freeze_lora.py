"""lora on a small transformer: few trainable weights, base weights untouched,
the loss falls, merged export equals the adapted model, and a saved run
reloads (the adapters are re-injected before the weights load)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ft
from ft.plugins.freeze.lora import LoraOptions, LoraStrategy

from freeze_testkit import Recorder, transformer_recipe


def _tokens(n=32, length=15, seed=1):
    return torch.randint(0, 64, (n, length), generator=torch.Generator().manual_seed(seed))


def test_lora_trains_adapters_only_and_exports_merged(transformer, make_recipe):
    rec = Recorder()
    recipe = transformer_recipe(make_recipe, freeze={"strategy": "lora", "target_modules": ["q", "v"]},
                                optim={"lr": 3e-3}, train={"epochs": 4})
    result = ft.run(recipe, quiet=True, callbacks=[rec])
    model = result.model

    # only adapters and head train: under 5% of all weights (adapters included)
    lora = {n for n, _ in model.named_parameters() if ".lora_" in n}
    assert len(lora) == 2 * 2 * 2  # A and B, on q and v, in 2 blocks
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in lora} == {"q", "v"}
    params = result.summary["params"]
    assert params["trainable"] / params["total"] < 0.05
    head = sum(p.numel() for p in model.head.parameters())
    assert params["trainable"] == sum(p.numel() for n, p in model.named_parameters() if n in lora) + head

    # pretrained weights bit-identical, adapters moved, loss fell
    start, end = rec.states[0], rec.states[-1]
    for key in start:
        if key.startswith("backbone.") and ".lora_" not in key:
            assert torch.equal(start[key], end[key]), key
    assert all(not torch.equal(start[n], end[n]) for n in lora if ".lora_B" in n)
    losses = [m["train_loss"] for m in rec.metrics]
    assert losses[-1] < 0.8 * losses[0]
    assert result.metrics["test"]["accuracy"] > 0.7

    # merged export: plain nn.Linear again, same outputs
    tokens = _tokens()
    loaded = ft.load_run(result.run_dir)
    merged = loaded.strategy.export(model)
    model.eval()
    merged.eval()
    with torch.no_grad():
        reference = model(tokens)
        torch.testing.assert_close(merged(tokens), reference, atol=1e-5, rtol=0)
        # the reloaded run re-injected identical adapters and loaded the trained weights
        torch.testing.assert_close(loaded.model(tokens), reference, atol=1e-6, rtol=0)
    assert not any(".lora_" in n or "base_layer" in n for n, _ in merged.named_parameters())
    assert type(merged.backbone.blocks[0].q) is nn.Linear
    assert not hasattr(merged.backbone, "peft_config")
    assert any(".lora_" in n for n, _ in model.named_parameters())  # export left the trained model alone


def test_lora_apply_is_deterministic_and_idempotent(transformer, make_recipe):
    recipe = ft.load_recipe(transformer_recipe(make_recipe, freeze={"strategy": "lora", "r": 4}))
    models = []
    for _ in range(2):
        model, _, strategy = ft.assemble(recipe)
        torch.manual_seed(len(models))  # a different global RNG state each time must not matter
        strategy.apply(model)
        strategy.apply(model)  # re-applying must not stack adapters
        models.append(model)
    a, b = (m.state_dict() for m in models)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # default: every nn.Linear of the backbone (q, k, v, o, mlp.0, mlp.2 in 2 blocks)
    assert sum(".lora_A." in k for k in a) == 12
    assert not any(".lora_" in k for k in a if k.startswith("head."))


@pytest.mark.parametrize("options,message", [
    ({"target_modules": ["query"]}, (r"'query' matches no module of backbone TinyTransformer; the layers it can "
                                     r"adapt \(nn.Linear and ungrouped nn.Conv1d/2d/3d layers\) are: blocks.0.q, "
                                     r"blocks.0.k")),
    ({"target_modules": ["mlp"]}, r"'mlp' names only modules LoRA cannot adapt"),
    ({"target_modules": ["q"], "exclude": ["q"]}, r"leave no layer to adapt"),
])
def test_lora_bad_targets_are_clear_errors(transformer, make_recipe, options, message):
    recipe = ft.load_recipe(transformer_recipe(make_recipe, freeze={"strategy": "lora", **options}))
    model, _, strategy = ft.assemble(recipe)
    with pytest.raises(ft.FtError, match=message) as err:
        strategy.apply(model)
    assert "strategy 'lora'" in str(err.value)


def test_lora_on_a_backbone_without_adaptable_layers_fails(registry):
    class EmbeddingOnly(ft.Backbone):
        feature_dim = 4

        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 4)
            self.norm = nn.LayerNorm(4)

    model = ft.FtModel(EmbeddingOnly(), nn.Linear(4, 2), ft.TaskInfo("classification", 2))
    with pytest.raises(ft.FtError, match="has no layers LoRA can adapt; LoRA adapts nn.Linear and ungrouped "
                                         "nn.Conv1d/2d/3d layers"):
        LoraStrategy(LoraOptions()).apply(model)


def test_lora_skips_layers_the_backbone_pins(registry):
    from freeze_testkit import TinyTransformer

    class Pinned(TinyTransformer):
        always_frozen = ("blocks.0",)

    model = ft.FtModel(Pinned(), nn.Linear(128, 2), ft.TaskInfo("classification", 2))
    LoraStrategy(LoraOptions(target_modules=["q"])).apply(model)
    adapted = {n.split(".lora_")[0] for n, _ in model.backbone.named_parameters() if ".lora_" in n}
    assert adapted == {"blocks.1.q"}


def test_ft_export_merges_lora_into_a_loadable_run(transformer, make_recipe, tmp_path):
    recipe = transformer_recipe(make_recipe, freeze={"strategy": "lora", "target_modules": ["q", "v"]},
                                optim={"lr": 3e-3}, train={"epochs": 2})
    result = ft.run(recipe, quiet=True)
    from ft.cli import main

    assert main(["export", str(result.run_dir), str(tmp_path / "exported")]) == 0
    exported = ft.load_run(tmp_path / "exported")
    assert exported.recipe.freeze.name == "full"  # plain layers: no adapters to re-inject
    assert not any(".lora_" in n for n, _ in exported.model.named_parameters())
    tokens = _tokens()
    result.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(exported.model(tokens), result.model(tokens), atol=1e-5, rtol=0)
    with pytest.raises(ft.FtError, match="not empty"):
        ft.export_run(result.run_dir, tmp_path / "exported")


def test_export_of_a_plain_run_keeps_its_strategy(registry, make_recipe, tmp_path):
    result = ft.run(make_recipe(train={"epochs": 1}), quiet=True)
    out = ft.export_run(result.run_dir, tmp_path / "plain")
    assert ft.load_run(out).recipe.freeze.name == "full"
    assert ft.evaluate_run(out)["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])
