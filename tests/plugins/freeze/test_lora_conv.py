"""lora on convolutions and next to recurrent layers.

Real backbones: EfficientNet-Lite0 (its pointwise 1x1 convs get adapters, its
depthwise convs cannot), the speech ``logmel_cnn`` (3x3 convs) and the
Resemblyzer LSTM encoder (no adapters on nn.LSTM: a clear error when nothing
else is left). Each run checks that only adapters and head train, the
pretrained weights stay bit-identical, the loss falls, and the export merges
into plain convolutions with the same outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import ft
from ft.contracts import BuildContext, groups_by_prefix
from ft.plugins.freeze.lora import LoraOptions, LoraStrategy
from ft.plugins.speech.resemblyzer import ResemblyzerOptions, build_resemblyzer
from ft.plugins.vision.backbones import Lite0Options, build_lite0

from freeze_testkit import Recorder

# the vision and speech tests' generated-data helpers (shapes drawn with PIL, tones written with soundfile)
sys.path[:0] = [str(Path(__file__).resolve().parents[1] / domain) for domain in ("vision", "speech")]
from speech_testkit import tone, write
from vision_testkit import SHAPES, draw_shape

CTX = BuildContext(load_pretrained=False)


def _adapted(model: nn.Module) -> set[str]:
    """Names of the backbone layers that carry adapters."""
    return {n.split(".lora_")[0] for n, _ in model.backbone.named_parameters() if ".lora_" in n}


def _check_lora_run(result, rec: Recorder) -> None:
    """Only adapters and head trained; every other backbone parameter is bit-identical (BatchNorm running
    statistics, buffers, may follow the adapted convolutions); the loss fell."""
    model = result.model
    lora = {n for n, _ in model.named_parameters() if ".lora_" in n}
    head = sum(p.numel() for p in model.head.parameters())
    assert result.summary["params"]["trainable"] == \
        sum(p.numel() for n, p in model.named_parameters() if n in lora) + head
    start, end = rec.states[0], rec.states[-1]
    frozen = [n for n, _ in model.named_parameters() if n.startswith("backbone.") and ".lora_" not in n]
    assert frozen and all(torch.equal(start[n], end[n]) for n in frozen)
    assert all(not torch.equal(start[n], end[n]) for n in lora if ".lora_B" in n)
    losses = [m["train_loss"] for m in rec.metrics]
    assert losses[-1] < 0.7 * losses[0], losses


def _check_merged(strategy: LoraStrategy, model: nn.Module, inputs: torch.Tensor, conv: type) -> nn.Module:
    """The export: plain convolutions again, no peft left, the same outputs to 1e-5."""
    merged = strategy.export(model)
    model.eval()
    merged.eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(inputs), model(inputs), atol=1e-5, rtol=0)
    assert not any(".lora_" in n or "base_layer" in n for n, _ in merged.named_parameters())
    assert not hasattr(merged.backbone, "peft_config")
    for name in _adapted(model):
        assert type(merged.backbone.get_submodule(name)) is conv, name
    return merged


# -- vision: EfficientNet-Lite0 ---------------------------------------------------------


def test_lora_on_efficientnet_lite0_trains_pointwise_adapters_and_merges(registry, tmp_path):
    root = tmp_path / "shapes"
    for c, (label, (kind, colour)) in enumerate(SHAPES.items()):
        (root / label).mkdir(parents=True)
        for i in range(8):
            draw_shape(kind, colour, 40, seed=100 * c + i).save(root / label / f"{label}_{i:03d}.png")
    recipe = {
        "task": {"type": "classification"},
        "data": {"format": "image_folder", "path": str(root), "val_fraction": 0.25, "seed": 1, "augment": False},
        "backbone": {"name": "efficientnet_lite0", "image_size": 64},
        "head": {"type": "linear"},
        "freeze": {"strategy": "lora", "r": 4},
        "optim": {"lr": 3e-3, "schedule": "constant"},
        "train": {"epochs": 4, "batch_size": 6, "progress": False, "checkpoint": False},
        "output": {"dir": str(tmp_path / "run")},
    }
    rec = Recorder()
    result = ft.run(recipe, quiet=True, callbacks=[rec])
    model = result.model

    # no nn.Linear in the backbone: every convolution peft can merge gets an adapter, the depthwise ones
    # and the TF-"same"-padded stem (timm's Conv2dSame has its own forward) do not
    adapted = _adapted(model)
    assert len(adapted) == 32
    assert {n.rsplit(".", 1)[-1] for n in adapted} == {"conv_pw", "conv_pwl", "conv_head"}
    described = result.summary["settings"]["strategy"]
    assert described["adapted_layers"] == 32
    assert described["not_adaptable"].startswith("model.conv_stem (Conv2dSame, a conv with its own forward), "
                                                 "model.blocks.0.0.conv_dw (depthwise conv, groups=32)")
    _check_lora_run(result, rec)
    assert result.metrics["val"]["accuracy"] >= 0.8
    assert result.summary["params"]["trainable"] / result.summary["params"]["total"] < 0.05

    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    loaded = ft.load_run(result.run_dir)
    _check_merged(loaded.strategy, model, images, nn.Conv2d)
    with torch.no_grad():  # the saved run re-injects the same adapters and loads the trained ones
        torch.testing.assert_close(loaded.model(images), model(images), atol=1e-6, rtol=0)


def _lite0_model(**options) -> tuple[ft.FtModel, LoraStrategy]:
    backbone = build_lite0(Lite0Options(weights="random"), BuildContext())
    model = ft.FtModel(backbone, nn.Linear(backbone.feature_dim, 3), ft.TaskInfo("classification", 3))
    return model, LoraStrategy(LoraOptions(r=4, **options))


@pytest.mark.parametrize("target,message", [
    ("conv_dw", (r"'conv_dw' selects model.blocks.0.0.conv_dw of backbone TimmBackbone \(and 15 more like it\), "
                 r"which LoRA cannot adapt \(depthwise conv, groups=32\): peft cannot merge adapters of grouped "
                 r"convolutions")),
    ("conv_stem", (r"'conv_stem' selects model.conv_stem of backbone TimmBackbone, which LoRA cannot adapt "
                   r"\(Conv2dSame, a conv with its own forward\)")),
])
def test_lora_refuses_convolutions_it_cannot_merge_when_targeted(target, message):
    model, strategy = _lite0_model(target_modules=["conv_pw", target])
    with pytest.raises(ft.FtError, match=message) as err:
        strategy.apply(model)
    assert "freeze.target_modules (strategy 'lora')" in str(err.value)
    assert "exclude these" in err.value.hint and "model.blocks.0.0.conv_pw" in err.value.hint
    assert not _adapted(model)


def test_lora_targets_and_excludes_convolutions_by_suffix():
    model, strategy = _lite0_model(target_modules=["conv_head", "conv_pwl"], exclude=["conv_pwl", "conv_dw"])
    strategy.apply(model)  # excluding the depthwise convs (which get no adapter anyway) is harmless
    assert _adapted(model) == {"model.conv_head"}
    assert sum(p.requires_grad for p in model.backbone.parameters()) == 2  # lora_A and lora_B of conv_head


# -- speech: the log-mel CNN and the Resemblyzer LSTM ---------------------------------------


def _tones(root: Path, n_per_class: int = 10) -> Path:
    for c, (label, freq) in enumerate((("low", 200.0), ("mid", 400.0), ("high", 800.0))):
        for i in range(n_per_class):
            write(root / label / f"spk{i % 4}_{label}_{i:03d}.wav",
                  tone(freq * (1 + 0.02 * ((i % 5) - 2)), 0.6, 8000, seed=1000 * c + i), 8000)
    return root


def _speech_recipe(root: Path, out: Path, backbone: dict, freeze: dict) -> dict:
    return {
        "task": {"type": "classification"},
        "data": {"format": "audio_folder", "path": str(root), "clip_seconds": 0.5, "val_fraction": 0.2,
                 "test_fraction": 0.2, "seed": 0},
        "backbone": backbone,
        "head": {"type": "linear"},
        "freeze": freeze,
        "optim": {"lr": 1e-2, "schedule": "constant"},
        "train": {"epochs": 10, "batch_size": 8, "progress": False, "seed": 0, "checkpoint": False},
        "output": {"dir": str(out)},
    }


def test_lora_on_logmel_cnn_trains_conv_adapters_and_merges(registry, tmp_path):
    root = _tones(tmp_path / "tones")
    recipe = _speech_recipe(root, tmp_path / "run", {"name": "logmel_cnn", "channels": [8, 16, 32, 32]},
                            {"strategy": "lora", "r": 4})
    rec = Recorder()
    result = ft.run(recipe, quiet=True, callbacks=[rec])
    model = result.model
    assert _adapted(model) == {f"blocks.{i}.0" for i in range(4)}  # every 3x3 conv
    assert "not_adaptable" not in result.summary["settings"]["strategy"]
    _check_lora_run(result, rec)
    assert result.metrics["test"]["accuracy"] >= 0.8

    waves = torch.randn(3, 8000, generator=torch.Generator().manual_seed(0)) * 0.1
    _check_merged(ft.load_run(result.run_dir).strategy, model, waves, nn.Conv2d)


def test_lora_on_an_lstm_only_backbone_is_a_clear_error(registry, tmp_path):
    root = _tones(tmp_path / "tones", n_per_class=3)
    recipe = _speech_recipe(root, tmp_path / "run", {"name": "resemblyzer", "pool": "lstm_mean"},
                            {"strategy": "lora"})
    with pytest.raises(ft.FtError) as err:
        ft.run(recipe, quiet=True)
    text = str(err.value)
    assert text.startswith("freeze.strategy = 'lora': peft cannot put LoRA adapters on nn.LSTM")
    assert "ResemblyzerEncoder are recurrent (lstm.0, lstm.1, lstm.2)" in text
    assert err.value.hint.startswith("use 'freeze_bottom', 'lp_ft', 'l2sp' or 'full'")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_lora_next_to_lstms_adapts_the_projection_only():
    encoder = build_resemblyzer(ResemblyzerOptions(), CTX)
    model = ft.FtModel(encoder, nn.Linear(256, 3), ft.TaskInfo("classification", 3))
    strategy = LoraStrategy(LoraOptions(r=4))
    strategy.apply(model)
    assert _adapted(model) == {"linear"}
    assert strategy.describe()["not_adaptable"] == "lstm.0 (LSTM), lstm.1 (LSTM), lstm.2 (LSTM)"
    assert not any(p.requires_grad for n, p in model.backbone.named_parameters() if n.startswith("lstm."))

    with pytest.raises(ft.FtError, match=r"'lstm.1' names lstm.1 of backbone ResemblyzerEncoder, an nn.LSTM: "
                                         r"peft cannot put LoRA adapters on recurrent layers") as err:
        LoraStrategy(LoraOptions(target_modules=["lstm.1"])).apply(
            ft.FtModel(build_resemblyzer(ResemblyzerOptions(), CTX), nn.Linear(256, 3),
                       ft.TaskInfo("classification", 3)))
    assert "freeze.target_modules" in str(err.value) and "'lp_ft'" in err.value.hint


# -- which convolutions, next to which linear layers --------------------------------------


class ConvFrontEnd(ft.Backbone):
    """A Whisper-like shape: Conv1d front end (one plain, one strided), then linear layers; plus convolutions
    peft cannot merge: dilated, reflect-padded, weight-normed."""

    def __init__(self, with_linear: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv1d(4, 8, 3, padding=1)
        self.conv2 = nn.Conv1d(8, 8, 3, stride=2, padding=1)
        self.dilated = nn.Conv1d(8, 8, 3, padding=2, dilation=2)
        self.reflect = nn.Conv1d(8, 8, 3, padding=1, padding_mode="reflect")
        self.normed = nn.utils.parametrizations.weight_norm(nn.Conv1d(8, 8, 1))
        self.fc = nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 8)) if with_linear else None
        self.feature_dim = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        x = self.normed(self.reflect(self.dilated(x))).mean(-1)
        return self.fc(x) if self.fc is not None else x

    def layer_groups(self):
        names = ["conv1", "conv2", "dilated", "reflect", "normed"] + (["fc"] if self.fc is not None else [])
        return groups_by_prefix(self, [(n, [n]) for n in names])


def _front_end_model(with_linear: bool = True) -> ft.FtModel:
    return ft.FtModel(ConvFrontEnd(with_linear), nn.Linear(8, 2), ft.TaskInfo("classification", 2))


def test_lora_keeps_to_the_linear_layers_when_there_are_any():
    model = _front_end_model()
    LoraStrategy(LoraOptions()).apply(model)
    assert _adapted(model) == {"fc.0", "fc.2"}  # as before convolutions were supported

    model = _front_end_model()
    LoraStrategy(LoraOptions(target_modules=["conv1", "conv2", "fc.2"])).apply(model)
    assert _adapted(model) == {"conv1", "conv2", "fc.2"}


def test_lora_on_conv1d_merges_and_leaves_out_what_it_cannot_merge():
    model = _front_end_model(with_linear=False)
    strategy = LoraStrategy(LoraOptions(r=2))
    strategy.apply(model)
    assert _adapted(model) == {"conv1", "conv2"}
    assert strategy.describe()["not_adaptable"] == (
        "dilated (dilated conv, dilation=(2,)), reflect (conv with padding_mode='reflect'), "
        "normed (conv with a computed weight, e.g. weight norm)")
    with torch.no_grad():  # B starts at zero: give the adapters something to merge
        for name, p in model.named_parameters():
            if ".lora_B" in name:
                p.normal_(generator=torch.Generator().manual_seed(len(name)))
    merged = _check_merged(strategy, model, torch.randn(5, 4, 16, generator=torch.Generator().manual_seed(1)),
                           nn.Conv1d)
    assert not torch.equal(merged.backbone.conv1.weight, model.backbone.conv1.base_layer.weight)

    for target, why in (("dilated", "peft's adapter ignores the dilation"), ("reflect", "pads with zeros"),
                        ("normed", "a merge cannot write into a computed weight")):
        with pytest.raises(ft.FtError, match=why):
            LoraStrategy(LoraOptions(target_modules=[target])).apply(_front_end_model())
