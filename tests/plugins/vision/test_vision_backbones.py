"""Vision backbones: the packaged ImageNet weights really work, weights load
checked from every local source, layer groups cover the model once, in order."""

from __future__ import annotations

import pytest
import torch

from ft.contracts import BuildContext
from ft.errors import FtError, RecipeError
from ft.plugins.vision.backbones import (Lite0Options, TimmOptions, build_lite0, build_timm, packaged_lite0_file,
                                         timm_layer_groups)
from ft.plugins.vision.weights import map_by_position

CTX = BuildContext()
CAT_CLASSES = {281, 282, 285}  # tabby, tiger cat, Egyptian cat
ESPRESSO = 967


def timm_options(**values) -> TimmOptions:
    return TimmOptions.model_validate(values)


@pytest.fixture(scope="module")
def lite0_classifier():
    return build_lite0(Lite0Options(keep_classifier=True), CTX).eval()


def test_lite0_classifies_imagenet_photos(lite0_classifier):
    """The unmodified 1000-class model with the plugin's own evaluation
    preprocessing: coffee -> espresso, chelsea -> a cat."""
    import skimage.data
    import timm
    from PIL import Image

    backbone = lite0_classifier
    assert backbone.load_report == {"loaded": 296, "missing": 0, "unexpected": 0, "mis_shaped": 0,
                                    "mapped_by_position": True}
    reference = timm.data.resolve_model_data_config(timm.create_model("tf_efficientnet_lite0"))
    assert backbone.data_config == reference
    assert reference["mean"] == reference["std"] == (0.5, 0.5, 0.5)
    assert reference["input_size"] == (3, 224, 224) and reference["crop_pct"] == 0.875

    transform = backbone.preprocess(train=False)
    images = torch.stack([transform(Image.fromarray(skimage.data.coffee())),
                          transform(Image.fromarray(skimage.data.chelsea()))])
    assert images.shape == (2, 3, 224, 224)
    assert -1.0 <= images.min() and images.max() <= 1.0  # (x/255 - 0.5) / 0.5
    with torch.no_grad():
        probs = backbone(images).softmax(-1)
    assert backbone.feature_dim == 1000
    coffee, cat = probs.argmax(-1).tolist()
    assert coffee == ESPRESSO and probs[0, ESPRESSO] > 0.5
    assert cat in CAT_CLASSES and probs[1, sorted(CAT_CLASSES)].sum() > 0.6


def test_timm_backbone_loads_the_packaged_file_by_key_map(lite0_classifier):
    """``timm`` + tf_efficientnet_lite0 + the package's file = the short name's weights."""
    timm_backbone = build_timm(timm_options(model="tf_efficientnet_lite0", weights=str(packaged_lite0_file()),
                                            keep_classifier=True), CTX)
    assert timm_backbone.load_report["mapped_by_position"]
    for name, tensor in lite0_classifier.state_dict().items():
        assert torch.equal(tensor, timm_backbone.state_dict()[name]), name


def test_key_map_rejects_a_wrong_shape(tmp_path):
    state = torch.load(packaged_lite0_file(), map_location="cpu", weights_only=True)
    state["_blocks.3._bn1.weight"] = state["_blocks.3._bn1.weight"][:-1]
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(FtError) as err:
        build_timm(timm_options(model="tf_efficientnet_lite0", weights=str(bad)), CTX)
    text = str(err.value)
    assert "_blocks.3._bn1.weight" in text and "blocks.2.0.bn2.weight" in text  # flat vs nested blocks
    assert "(143,)" in text and "(144,)" in text and "backbone.weights" in text

    # same shapes but a different kind of tensor (a bias where a weight should be) is refused too
    with pytest.raises(FtError, match="different kinds of tensor"):
        map_by_position({"a.bias": torch.zeros(3)}, {"x.weight": torch.zeros(3)}, "here")
    with pytest.raises(FtError, match="2 tensors but the model has 1"):
        map_by_position({"a.weight": torch.zeros(3), "b.weight": torch.zeros(1)}, {"x.weight": torch.zeros(3)}, "here")


@pytest.mark.parametrize("model", ["tf_efficientnet_lite0", "resnet10t", "test_vit", "test_convnext"])
@pytest.mark.parametrize("coarse", [True, False])
def test_layer_groups_cover_every_parameter_once_in_order(model, coarse):
    import timm

    net = timm.create_model(model, num_classes=0)
    groups = timm_layer_groups(net, coarse=coarse)
    position = {id(p): i for i, p in enumerate(net.parameters())}
    ids = [id(p) for g in groups for p in g.params]
    assert sorted(ids) == sorted(position) and len(ids) == len(set(ids))
    spans = [(min(position[id(p)] for p in g.params), max(position[id(p)] for p in g.params)) for g in groups]
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:])), [g.name for g in groups]  # input to output
    assert groups[0].name == "stem" and len({g.name for g in groups}) == len(groups)
    assert "head" not in {g.name for g in groups}


def test_lite0_layer_groups():
    backbone = build_lite0(Lite0Options(weights="random"), CTX)
    names = [g.name for g in backbone.layer_groups()]
    assert names == ["stem", *(f"blocks.{i}" for i in range(7)), "conv_head"]
    fine = timm_layer_groups(backbone.model, coarse=False)  # what layer_groups = "fine" gives
    assert len(fine) == 18 and fine[1].name == "blocks.0.0" and fine[-1].name == "conv_head"
    assert backbone.feature_dim == 1280
    assert backbone(torch.zeros(2, 3, 64, 64)).shape == (2, 1280)


def test_local_file_and_folder_weights(tmp_path):
    import timm
    from safetensors.torch import save_file
    from timm.models import save_for_hf

    torch.manual_seed(0)
    source = timm.create_model("test_resnet", num_classes=7).eval()  # a classifier to strip
    file = tmp_path / "w.safetensors"
    save_file(source.state_dict(), str(file))
    x = torch.randn(2, 3, 48, 48)
    expected = source.forward_head(source.forward_features(x), pre_logits=True)

    from_file = build_timm(timm_options(model="test_resnet", weights=str(file)), CTX).eval()
    assert from_file.load_report["loaded"] == len(from_file.model.state_dict())
    torch.testing.assert_close(from_file(x), expected)

    pth = tmp_path / "ckpt.pth"
    torch.save({"state_dict": source.state_dict(), "epoch": 3}, pth)  # a training script's checkpoint
    torch.testing.assert_close(build_timm(timm_options(model="test_resnet", weights=str(pth)), CTX).eval()(x),
                               expected)

    folder = tmp_path / "hf"
    save_for_hf(source, str(folder), safe_serialization=True, data_config={"mean": (0.1, 0.2, 0.3)})
    from_dir = build_timm(timm_options(weights=str(folder)), CTX).eval()  # architecture from config.json
    assert from_dir.model_name == "test_resnet" and from_dir.data_config["mean"] == (0.1, 0.2, 0.3)
    torch.testing.assert_close(from_dir(x), expected)

    kept = build_timm(timm_options(weights=str(folder), keep_classifier=True), CTX).eval()
    assert kept.feature_dim == 7
    torch.testing.assert_close(kept(x), source(x))


def test_weights_that_do_not_fit_are_reported(tmp_path, capsys):
    import timm
    from safetensors.torch import save_file

    state = timm.create_model("test_resnet", num_classes=0).state_dict()
    state.pop("layer4.0.conv1.weight")
    state["extra.weight"] = torch.zeros(1)
    file = tmp_path / "partial.safetensors"
    save_file(state, str(file))
    with pytest.raises(FtError) as err:
        build_timm(timm_options(model="test_resnet", weights=str(file)), CTX)
    text = str(err.value)
    assert "1 tensor(s) missing from the file: layer4.0.conv1.weight" in text
    assert "1 tensor(s) not in the model: extra.weight" in text and "backbone.strict = false" in text

    loose = build_timm(timm_options(model="test_resnet", weights=str(file), strict=False), CTX)
    assert loose.load_report["missing"] == 1 and loose.load_report["unexpected"] == 1
    assert "missing from the file" in capsys.readouterr().out


def test_hub_weights_offline_fail_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FtError) as err:
        build_timm(timm_options(weights="hf-hub:timm/resnet18.a1_in1k"), CTX)
    assert "HF_HUB_OFFLINE" in str(err.value) and "local file" in str(err.value)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: like a machine offline
    with pytest.raises(FtError, match="cannot be reached from here") as err:
        build_timm(timm_options(weights="hf-hub:timm/resnet18.a1_in1k"), CTX)
    assert "backbone.weights = " in str(err.value)


def test_recipe_errors_name_the_key(registry, tmp_path):
    import ft

    recipe = {"data": {"format": "image_folder", "path": str(tmp_path)},
              "backbone": {"name": "timm", "model": "resnet18", "weights": "missing.safetensors"}}
    with pytest.raises(RecipeError, match=r"backbone\.weights.*weights file or folder not found"):
        ft.load_recipe(recipe)
    recipe["backbone"] = {"name": "timm", "model": "resnet18"}
    with pytest.raises(RecipeError, match=r"backbone\.weights: missing"):
        ft.load_recipe(recipe)
    with pytest.raises(FtError, match="did you mean 'resnet18'"):
        build_timm(timm_options(model="resnet181", weights="random"), CTX)


@pytest.mark.parametrize("strategy,options", [
    ("freeze_bottom", {"n": 3}), ("gradual_unfreeze", {}), ("discriminative_lr", {"mode": "layerwise"}),
    ("lp_ft", {"lr_decay": 0.8}),
])
def test_freeze_strategies_split_lite0(registry, strategy, options):
    """Every registered freeze strategy can split the vision backbone as asked."""
    from ft.contracts import TaskInfo
    from ft.freezing import apply_strategy
    from ft.model import FtModel
    from ft.plugins.heads import HeadOptions, build_linear

    if strategy not in registry.entries["ft_freeze_strategies"]:
        pytest.skip(f"freeze strategy {strategy!r} is not registered")
    backbone = build_lite0(Lite0Options(weights="random"), CTX)
    task = TaskInfo("classification", 4, None)
    model = FtModel(backbone, build_linear(HeadOptions(), backbone.feature_dim, task, CTX), task)
    spec = registry.get("ft_freeze_strategies", strategy)
    chosen = spec.build(spec.options.model_validate(options), CTX)
    apply_strategy(chosen, model)
    groups = chosen.param_groups(model)
    names = [g.name for g in groups]
    expected = [g.name for g in backbone.layer_groups()] + ["head"]
    assert names == (expected[3:] if strategy == "freeze_bottom" else expected)
    trainable = [id(p) for g in groups for p in g.params]
    assert len(trainable) == len(set(trainable)) == sum(p.requires_grad for p in model.parameters())
    mults = {g.name: g.lr_mult for g in groups}
    if strategy == "discriminative_lr":
        assert mults["stem"] == pytest.approx(0.75 ** 9) and mults["head"] == 1.0
