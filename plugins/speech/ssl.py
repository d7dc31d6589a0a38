"""``wav2vec2_base``, ``hubert_base``, ``wavlm_base``: self-supervised speech encoders.

Architectures come from ``torchaudio.models``; weights from a local file (a
state_dict in torchaudio's key layout, ``.pt`` read with
``weights_only=True`` or ``.safetensors``), or, only when asked for and
online, a ``torchaudio.pipelines`` bundle. Features are the mean over frames
of transformer layer ``layer`` (padded frames masked when lengths are given).
The convolutional feature extractor stays frozen by default
(``freeze_feature_extractor``), as in the wav2vec 2.0 fine-tuning recipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from ft.activation_checkpointing import checkpoint_modules
from ft.checkpoint import read_safetensors, read_state
from ft.contracts import groups_by_prefix
from ft.errors import FtError
from ft.specs import ExistingPath, Options

from .frontend import SpeechBackbone, masked_pool

#: backbone name -> (torchaudio builder, family used for the tiny test config, default bundle)
FAMILIES = {
    "wav2vec2_base": ("wav2vec2_base", "wav2vec2", "WAV2VEC2_BASE"),
    "hubert_base": ("hubert_base", "wav2vec2", "HUBERT_BASE"),
    "wavlm_base": ("wavlm_base", "wavlm", "WAVLM_BASE"),
}


class SslOptions(Options):
    """``[backbone]`` options of the self-supervised encoders."""

    weights: Literal["random"] | ExistingPath | None = Field(
        None, description="local state_dict (.pt/.pth/.bin via torch.load(weights_only=True), or .safetensors) "
        "in torchaudio's key layout; 'random' = no pretrained weights (testing, from scratch)")
    bundle: str | None = Field(None, description="torchaudio.pipelines bundle to download, e.g. WAV2VEC2_BASE "
                               "(needs network; used only when weights is not set)")
    config: Literal["base", "tiny"] = Field("base", description="tiny: a 2-layer, 32-d model for tests")
    layer: int | None = Field(None, ge=1, description="transformer layer whose output is pooled (1-based); "
                              "default the last. Layers above it are dropped")
    freeze_feature_extractor: bool = Field(True, description="keep the conv feature extractor frozen "
                                           "whatever the freeze strategy")
    layer_drop: float = Field(0.0, ge=0, lt=1, description="LayerDrop probability while training")


def _tiny(family: str, layer_drop: float):
    import torchaudio.models as M

    common = dict(extractor_mode="group_norm",
                  extractor_conv_layer_config=[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2,
                  extractor_conv_bias=False, encoder_embed_dim=32, encoder_projection_dropout=0.0,
                  encoder_pos_conv_kernel=16, encoder_pos_conv_groups=4, encoder_num_layers=2,
                  encoder_num_heads=2, encoder_attention_dropout=0.0, encoder_ff_interm_features=64,
                  encoder_ff_interm_dropout=0.0, encoder_dropout=0.0, encoder_layer_norm_first=False,
                  encoder_layer_drop=layer_drop, aux_num_out=None)
    if family == "wavlm":
        return M.wavlm_model(encoder_num_buckets=32, encoder_max_distance=128, **common)
    return M.wav2vec2_model(**common)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file (``weights_only=True``),
    normalised to torchaudio's key layout; a missing or damaged file is an
    FtError naming it."""
    hint = ("backbone.weights must be a state_dict saved with torch.save or safetensors; if the file was cut "
            "short, download or export it again")
    if path.suffix == ".safetensors":
        state = read_safetensors(path, "the backbone weights (backbone.weights)", hint)
    else:
        state = read_state(path, "the backbone weights (backbone.weights)", hint)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FtError("not a state_dict (a mapping of names to tensors)", where=str(path))
    if state and all(k.startswith("model.") for k in state):
        state = {k[len("model."):]: v for k, v in state.items()}
    renames = {"pos_conv_embed.conv.weight_g": "pos_conv_embed.conv.parametrizations.weight.original0",
               "pos_conv_embed.conv.weight_v": "pos_conv_embed.conv.parametrizations.weight.original1"}
    out = {}
    for key, value in state.items():
        if key.startswith("aux."):  # an ASR head on top of the encoder: not part of the backbone
            continue
        for old, new in renames.items():
            key = key.replace(old, new)
        out[key] = value
    return out


def load_bundle(name: str):
    import torchaudio.pipelines as P

    bundle = getattr(P, name, None)
    if bundle is None or not hasattr(bundle, "get_model"):
        known = sorted(n for n in dir(P) if n.isupper() and hasattr(getattr(P, n), "get_model"))
        raise FtError(f"unknown torchaudio bundle {name!r}", where="backbone.bundle",
                      hint="one of: " + ", ".join(known))
    try:
        model = bundle.get_model()
    except Exception as exc:
        raise FtError(f"could not fetch torchaudio bundle {name} ({type(exc).__name__}: {exc})",
                      where="backbone.bundle",
                      hint="offline? set backbone.weights to a local state_dict file instead") from None
    return getattr(model, "model", model), bundle.sample_rate  # ASR bundles wrap the Wav2Vec2Model


class SslEncoder(SpeechBackbone):
    """A torchaudio ``Wav2Vec2Model`` (wav2vec 2.0, HuBERT, WavLM) as a backbone."""

    sample_rate = 16000

    def __init__(self, name: str, model: nn.Module, options: SslOptions, source: str, sample_rate: int = 16000):
        super().__init__()
        self.name, self.source, self.sample_rate = name, source, sample_rate
        layers = model.encoder.transformer.layers
        layer = options.layer or len(layers)
        if layer > len(layers):
            raise FtError(f"layer {layer} asked for, but {name} has {len(layers)} transformer layers",
                          where="backbone.layer")
        model.encoder.transformer.layers = layers[:layer]  # unused layers would get no gradient
        self.model = model
        self.layer = layer
        self.feature_dim = int(model.encoder.feature_projection.projection.out_features)
        self.freeze_feature_extractor = options.freeze_feature_extractor
        # The engine re-freezes these after every strategy.apply (ft.Backbone.always_frozen).
        self.always_frozen = ("model.feature_extractor",) if options.freeze_feature_extractor else ()
        for param in model.feature_extractor.parameters() if options.freeze_feature_extractor else ():
            param.requires_grad_(False)

    def forward(self, inputs) -> torch.Tensor:
        """``inputs``: waveforms ``[B, T]``, or ``{"waveform": [B, T], "lengths": [B]}``
        when clips were padded to a common length (padded frames are then masked)."""
        if isinstance(inputs, dict):
            waveform, lengths = inputs["waveform"], inputs.get("lengths")
        else:
            waveform, lengths = inputs, None
        if self.freeze_feature_extractor:
            with torch.no_grad():  # no gradient reaches it even if a strategy set requires_grad
                features, lengths = self.model.feature_extractor(waveform, lengths)
        else:
            features, lengths = self.model.feature_extractor(waveform, lengths)
        hidden = self.model.encoder(features, lengths)  # [B, frames, D]
        if lengths is None:
            return hidden.mean(dim=1)
        return masked_pool(hidden, torch.arange(hidden.shape[1], device=hidden.device)[None] < lengths[:, None], "mean")

    def layer_groups(self):
        transformer = self.model.encoder.transformer
        early = ["model.encoder.feature_projection", "model.encoder.transformer.pos_conv_embed"]
        spec = [("feature_extractor", ["model.feature_extractor"])]
        final_norm = not transformer.layer_norm_first  # torchaudio applies it after the last layer then
        spec.append(("feature_projection", early + ([] if final_norm else ["model.encoder.transformer.layer_norm"])))
        spec += [(f"layer{i}", [f"model.encoder.transformer.layers.{i}"]) for i in range(len(transformer.layers))]
        if final_norm:
            spec.append(("final_norm", ["model.encoder.transformer.layer_norm"]))
        return groups_by_prefix(self, spec)

    def enable_activation_checkpointing(self) -> None:
        """Recompute each transformer layer in backward, and each conv layer
        of the feature extractor when it trains (its first layers' outputs,
        at 3.2 kHz, are the largest activations of the model)."""
        checkpoint_modules([*self.model.feature_extractor.conv_layers, *self.model.encoder.transformer.layers])

    def fsdp_units(self) -> list[nn.Module]:
        """The transformer layers, input to output (the small conv feature
        extractor, frozen by default, stays with the root)."""
        return list(self.model.encoder.transformer.layers)

    def describe(self) -> dict:
        return {"class": "SslEncoder", "name": self.name, "weights": self.source, "layer": self.layer,
                "sample_rate": self.sample_rate, "feature_dim": self.feature_dim,
                "freeze_feature_extractor": self.freeze_feature_extractor}


def make_builder(name: str):
    builder_name, family, default_bundle = FAMILIES[name]

    def build(options: SslOptions, ctx) -> SslEncoder:
        import torchaudio.models as M

        rate = 16000
        if options.config == "tiny":
            model = _tiny(family, options.layer_drop)
        else:
            model = getattr(M, builder_name)(encoder_layer_drop=options.layer_drop)
        if not ctx.load_pretrained or options.weights == "random":
            source = "random" if options.weights == "random" else str(options.weights or options.bundle)
        elif options.weights is not None:
            state = read_state_dict(options.weights)
            missing, unexpected = model.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise FtError(f"the weights do not fit {name} (config {options.config!r}): "
                              f"missing {sorted(missing)[:4]}{'...' if len(missing) > 4 else ''}, "
                              f"unexpected {sorted(unexpected)[:4]}{'...' if len(unexpected) > 4 else ''}",
                              where=str(options.weights),
                              hint="the file must be a torchaudio state_dict of this architecture "
                                   "(convert fairseq/Hugging Face checkpoints with "
                                   "torchaudio.models.wav2vec2.utils.import_fairseq_model / "
                                   "import_huggingface_model, then torch.save(model.state_dict()))")
            source = str(options.weights)
        elif options.bundle is not None:
            if options.config != "base":
                raise FtError("a bundle holds a base model", where="backbone.config", hint="use config = \"base\"")
            model, rate = load_bundle(options.bundle)
            model.encoder.transformer.layer_drop = options.layer_drop
            source = f"torchaudio bundle {options.bundle}"
        else:
            raise FtError(f"{name} needs weights", where="backbone.weights",
                          hint=f"set backbone.weights to a local state_dict file, backbone.bundle = "
                               f"\"{default_bundle}\" (downloads; needs network), or weights = \"random\" "
                               "to train from scratch")
        return SslEncoder(name, model, options, source, rate)

    build.__doc__ = f"Build ``{name}`` from its options."
    return build
