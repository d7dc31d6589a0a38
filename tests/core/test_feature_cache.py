"""Frozen-feature caching: automatic when the backbone is frozen and inputs
are not augmented, same result as the uncached path."""

from __future__ import annotations

import pytest
import torch

import ft


class CountingCalls:
    """Counts backbone forward calls during training."""

    def __init__(self):
        self.calls = 0

    def ft_run_start(self, run):
        backbone = run.model.backbone
        original = backbone.forward

        def counted(x):
            self.calls += 1
            return original(x)

        backbone.forward = counted


def test_cached_and_uncached_linear_probe_agree(registry, make_recipe, tmp_path):
    base = dict(freeze={"strategy": "linear_probe"}, head={"dropout": 0.1},
                data={"spread": 2.5, "n_classes": 4}, train={"epochs": 4})
    counter_cached, counter_plain = CountingCalls(), CountingCalls()
    cached = ft.run(make_recipe(**base, output={"dir": str(tmp_path / "c")}), quiet=True,
                    callbacks=[counter_cached])
    uncached = {**base, "train": {"epochs": 4, "cache_features": False}}
    plain = ft.run(make_recipe(**uncached, output={"dir": str(tmp_path / "p")}), quiet=True,
                   callbacks=[counter_plain])
    assert cached.summary["settings"]["feature_cache"].startswith("on")
    assert plain.summary["settings"]["feature_cache"].startswith("off")
    assert cached.metrics["test"]["accuracy"] == pytest.approx(plain.metrics["test"]["accuracy"], abs=1e-9)
    for a, b in zip(cached.model.head.parameters(), plain.model.head.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # backbone ran once per split while cached (train + val, then the final val/test pass),
    # but every batch of every epoch without the cache
    assert counter_cached.calls < counter_plain.calls / 3


def test_augmented_inputs_disable_the_cache(registry, make_recipe):
    result = ft.run(make_recipe(freeze={"strategy": "linear_probe"}, data={"augment_noise": 0.1},
                                train={"epochs": 1}), quiet=True)
    assert result.summary["settings"]["feature_cache"] == "off (training inputs are randomly augmented)"


def test_full_finetuning_never_caches(registry, make_recipe):
    counter = CountingCalls()
    ft.run(make_recipe(train={"epochs": 2}), quiet=True, callbacks=[counter])
    steps = 2 * 15
    assert counter.calls >= steps


def test_on_disk_cache_is_reused(registry, make_recipe, tmp_path):
    recipe = make_recipe(freeze={"strategy": "linear_probe"}, train={"epochs": 2, "feature_cache_on_disk": True})
    result = ft.run(recipe, quiet=True)
    files = sorted(p.name for p in (result.run_dir / "cache").iterdir())
    assert len(files) == 2 and files[0].startswith("features-train-") and files[1].startswith("features-val-")
    from safetensors.torch import load_file

    train = load_file(str(result.run_dir / "cache" / files[0]))
    assert train["features"].shape == (240, 16) and train["targets"].shape == (240,)
    # the cached features are the backbone's eval-mode features
    loaded = ft.assemble(ft.load_recipe(recipe))[0]
    loaded.eval()
    torch.testing.assert_close(train["features"][:5], loaded.backbone(loaded_inputs(recipe)[:5]), rtol=1e-5, atol=1e-6)


def loaded_inputs(recipe):
    import toy_plugin

    opts = toy_plugin.BlobOptions()
    x, _ = toy_plugin.make_blobs(opts, "classification")
    return x


def test_feature_cache_key_changes_with_weights():
    from ft.feature_cache import FeatureCache
    import toy_plugin

    backbone = toy_plugin.ToyBackbone()
    cache = FeatureCache(backbone, "data-a")
    k1 = cache.key()
    assert FeatureCache(backbone, "data-b").key() != k1
    with torch.no_grad():
        backbone.block1[0].weight[0, 0] += 1e-3
    assert cache.key() != k1


def test_cache_keeps_dict_targets(tmp_path):
    """Targets that are dicts of tensors (e.g. relevant + excluded items)
    survive the cache, in memory and on disk."""
    from torch.utils.data import DataLoader

    from ft.data import TensorPairs
    from ft.feature_cache import FeatureCache
    import toy_plugin

    backbone = toy_plugin.ToyBackbone()
    x = torch.randn(10, 8)
    targets = {"relevant": torch.arange(10), "exclude": torch.arange(10).float() * 2}
    data = TensorPairs(x, targets)
    for directory in (None, tmp_path):
        cache = FeatureCache(backbone, "fp", directory)
        pairs = cache.get("train", DataLoader(data, batch_size=4), backbone, torch.device("cpu"), lambda v: v)
        assert pairs.inputs.shape == (10, 16)
        assert torch.equal(pairs.targets["relevant"], targets["relevant"])
        assert torch.equal(pairs[3][1]["exclude"], torch.tensor(6.0))
    again = FeatureCache(backbone, "fp", tmp_path).get("train", None, None, None, None)  # from disk
    assert torch.equal(again.targets["exclude"], targets["exclude"])
