"""``resemblyzer``: the pretrained Resemblyzer speaker encoder as a backbone.

The network (GE2E speaker encoder, 1.42 M parameters) is a 3-layer LSTM
40 -> 256, then Linear 256 -> 256 + ReLU, L2-normalised; it reads 40-band mel
*power* spectrograms (16 kHz, 25 ms windows, 10 ms hop) in 160-frame (1.6 s)
partial windows. This module rebuilds it with plain torch/torchaudio and
loads ``pretrained.pt`` from the Resemblyzer package file (the package itself
is never imported: it needs webrtcvad and librosa). The three LSTM layers are
three 1-layer ``nn.LSTM`` modules so each is its own layer group; the weights
are copied tensor by tensor (``weight_ih_l1`` -> ``lstm.1.weight_ih_l0``),
so the function is exactly the original's.

A clip is embedded as in ``VoiceEncoder.embed_utterance``: partial windows at
``partial_rate`` per second (1.3: about 50 % overlap), the last one kept if it
is at least ``min_coverage`` full (zero padding), partial embeddings averaged
and L2-normalised.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ft.checkpoint import read_state
from ft.contracts import groups_by_prefix
from ft.errors import FtError
from ft.specs import ExistingPath

from .frontend import SpecAugment, as_constants, SpecAugmentOptions, SpeechBackbone, VolumeNormalize

SAMPLE_RATE = 16000
HOP = 160  # 10 ms
PARTIAL_FRAMES = 160  # 1.6 s
N_MELS = 40
HIDDEN = 256


class ResemblyzerOptions(SpecAugmentOptions):
    """``[backbone]`` options of ``resemblyzer``."""

    weights: ExistingPath | None = Field(None, description="pretrained.pt of Resemblyzer (a dict with "
                                         "'model_state', or a bare state_dict); default: the one in the "
                                         "installed Resemblyzer package")
    pool: Literal["embedding", "lstm_mean"] = Field(
        "embedding", description="embedding: the L2-normed 256-d speaker embedding; lstm_mean: mean over "
        "frames of an LSTM layer's outputs (256-d; the projection and any layer above are dropped)")
    layer: int = Field(3, ge=1, le=3, description="lstm_mean: which LSTM layer (1-3) is averaged")
    pool_norm: bool = Field(True, description="lstm_mean: standardise the pooled features across their "
                            "256 dimensions (layer norm without parameters), which a linear head learns from faster")
    partial_rate: float = Field(1.3, gt=0.625, description="partial windows per second (Resemblyzer: 1.3)")
    min_coverage: float = Field(0.75, gt=0, le=1, description="keep a last, zero-padded partial window "
                                "if at least this fraction of it is audio")
    normalize_volume: bool = Field(True, description="raise quiet clips to -30 dBFS, as in training")
    freq_mask_width: int = Field(6, ge=0, description="largest frequency mask, in mel bands (of 40)")


def packaged_weights() -> Path | None:
    """``resemblyzer/pretrained.pt`` of the installed package, found without importing it."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "pretrained.pt"
        if path.is_file():
            return path
    return None


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """Resemblyzer's state dict in this module's key names (similarity_* dropped);
    a missing or damaged file is an FtError naming it."""
    data = read_state(path, "the Resemblyzer weights",
                      hint="give Resemblyzer's pretrained.pt (backbone.weights), or reinstall the package: "
                           "pip install --no-deps --force-reinstall Resemblyzer==0.1.4")
    state = data.get("model_state", data) if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise FtError("not a Resemblyzer checkpoint (expected a dict with 'model_state')", where=str(path))
    out = {}
    for layer in range(3):
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            out[f"lstm.{layer}.{kind}_l0"] = f"lstm.{kind}_l{layer}"
    out["linear.weight"], out["linear.bias"] = "linear.weight", "linear.bias"
    missing = [src for src in out.values() if src not in state]
    if missing:
        raise FtError(f"not a Resemblyzer checkpoint: missing {missing[:4]}", where=str(path))
    return {dst: state[src] for dst, src in out.items()}


@lru_cache(maxsize=32)
def partial_layout(n_samples: int, rate: float, min_coverage: float) -> tuple[tuple[int, ...], int]:
    """Start frames of the partial windows and the padded sample count.

    A transcription of ``VoiceEncoder.compute_partial_slices`` (Resemblyzer
    0.1.4) for the mel side.
    """
    n_frames = int(math.ceil((n_samples + 1) / HOP))
    frame_step = int(round((SAMPLE_RATE / rate) / HOP))
    if not 0 < frame_step <= PARTIAL_FRAMES:
        raise FtError(f"partial_rate {rate} gives a step of {frame_step} frames (must be 1..{PARTIAL_FRAMES})")
    steps = max(1, n_frames - PARTIAL_FRAMES + frame_step + 1)
    starts = list(range(0, steps, frame_step))
    last = starts[-1] * HOP
    coverage = (n_samples - last) / (PARTIAL_FRAMES * HOP)
    if coverage < min_coverage and len(starts) > 1:
        starts = starts[:-1]
    padded = max(n_samples, (starts[-1] + PARTIAL_FRAMES) * HOP)
    return tuple(starts), padded


class ResemblyzerEncoder(SpeechBackbone):
    """Waveforms ``[B, T]`` at 16 kHz -> 256-d clip features (see module doc)."""

    sample_rate = SAMPLE_RATE

    def __init__(self, options: ResemblyzerOptions, weights: Path | None = None):
        super().__init__()
        import torchaudio.transforms as T

        self.options = options
        self.pool = options.pool
        self.weights_path = weights
        self.feature_dim = HIDDEN
        # Resemblyzer trained on librosa < 0.10 mels: centred frames, reflect padding, Slaney mel scale.
        self.mel = as_constants(T.MelSpectrogram(sample_rate=SAMPLE_RATE, n_fft=400, hop_length=HOP,
                                                 n_mels=N_MELS, power=2.0, norm="slaney", mel_scale="slaney",
                                                 center=True, pad_mode="reflect"))
        self.spec_augment = SpecAugment(options)
        # lstm_mean pools an LSTM layer's outputs: the layers above it and the projection would get no
        # gradient (and cost time), so they are not built.
        n_layers = 3 if options.pool == "embedding" else options.layer
        self.lstm = nn.ModuleList(nn.LSTM(N_MELS if i == 0 else HIDDEN, HIDDEN, 1, batch_first=True)
                                  for i in range(n_layers))
        self.linear = nn.Linear(HIDDEN, HIDDEN) if options.pool == "embedding" else None

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        own = self.state_dict()
        state = {k: v for k, v in state.items() if k in own}  # layers not built (lstm_mean) are dropped
        for key, value in state.items():
            if own[key].shape != value.shape:
                raise FtError(f"weight {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}",
                              where=str(self.weights_path))
        self.load_state_dict(state, strict=True)

    def partials(self, waveform: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` -> mel partial windows ``[B, P, 160, 40]``."""
        starts, padded = partial_layout(waveform.shape[-1], self.options.partial_rate, self.options.min_coverage)
        if padded > waveform.shape[-1]:
            waveform = F.pad(waveform, (0, padded - waveform.shape[-1]))
        mel = self.spec_augment(self.mel(waveform.float()))  # [B, 40, frames]
        index = torch.tensor(starts, device=mel.device)[:, None] + torch.arange(PARTIAL_FRAMES, device=mel.device)
        return mel.transpose(1, 2)[:, index]

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        windows = self.partials(waveform)
        batch, n_partials = windows.shape[:2]
        x = windows.reshape(batch * n_partials, PARTIAL_FRAMES, N_MELS)
        for lstm in self.lstm:
            x, _ = lstm(x)
        if self.linear is None:
            pooled = x.mean(dim=1).view(batch, n_partials, HIDDEN).mean(dim=1)
            return F.layer_norm(pooled, (HIDDEN,)) if self.options.pool_norm else pooled
        embeds = F.normalize(F.relu(self.linear(x[:, -1])), dim=-1)
        return F.normalize(embeds.view(batch, n_partials, HIDDEN).mean(dim=1), dim=-1)

    def layer_groups(self):
        spec = [(f"lstm{i}", [f"lstm.{i}"]) for i in range(len(self.lstm))] + [("projection", ["linear"])]
        return groups_by_prefix(self, spec)

    def enable_activation_checkpointing(self) -> None:
        """Not offered: up to three LSTM layers over 1.6 s windows keep little
        activation memory to trade for recompute. Overridden only so the
        error names the backbone as a recipe does (not the class)."""
        raise FtError("backbone resemblyzer cannot checkpoint its activations: it is a small LSTM over 1.6 s "
                      "windows, with little activation memory to save",
                      hint="set train.activation_checkpointing = false; to use less memory lower train.batch_size")

    def preprocess(self, train: bool):
        return VolumeNormalize(-30.0, increase_only=True) if self.options.normalize_volume else None

    def describe(self) -> dict:
        return {"class": "ResemblyzerEncoder", "name": "resemblyzer", "weights": str(self.weights_path),
                "pool": self.pool, "layers": len(self.lstm), "sample_rate": self.sample_rate, "feature_dim": self.feature_dim}


def build_resemblyzer(options: ResemblyzerOptions, ctx) -> ResemblyzerEncoder:
    path = options.weights or packaged_weights()
    if path is None and ctx.load_pretrained:
        raise FtError("no Resemblyzer weights: backbone.weights is not set and the Resemblyzer package is not "
                      "installed", where="backbone.weights",
                      hint="pip install --no-deps Resemblyzer==0.1.4 (only its pretrained.pt is read), or set "
                           "backbone.weights to a pretrained.pt file")
    encoder = ResemblyzerEncoder(options, path)
    if ctx.load_pretrained:
        encoder.load_weights(load_state(path))
    return encoder
