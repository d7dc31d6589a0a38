"""``logmel_cnn``: a small log-mel CNN trained from scratch (the baseline).

64-band log-mel spectrogram (16 kHz, 25 ms windows, 10 ms hop), normalised per
clip (mean 0, variance 1 over the whole spectrogram: gain-invariant, spectral
shape kept), SpecAugment while training, then four Conv3x3-BN-ReLU-MaxPool
blocks and a global average pool.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from ft.activation_checkpointing import checkpoint_modules
from ft.contracts import groups_by_prefix

from .frontend import SpecAugment, as_constants, SpecAugmentOptions, SpeechBackbone


class LogmelCnnOptions(SpecAugmentOptions):
    """``[backbone]`` options of ``logmel_cnn``."""

    n_mels: int = Field(64, ge=8)
    channels: list[int] = Field(default_factory=lambda: [16, 32, 64, 128], min_length=1,
                                description="output channels of each conv block; the last is feature_dim")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout before pooling")
    seed: int = Field(0, description="initialisation seed")


class LogmelCnn(SpeechBackbone):
    """Waveforms ``[B, T]`` at 16 kHz -> ``[B, channels[-1]]``."""

    sample_rate = 16000

    def __init__(self, options: LogmelCnnOptions):
        super().__init__()
        import torchaudio.transforms as T

        self.options = options
        self.mel = as_constants(T.MelSpectrogram(sample_rate=self.sample_rate, n_fft=400, hop_length=160,
                                                 n_mels=options.n_mels, power=2.0))
        self.spec_augment = SpecAugment(options)
        blocks, width = [], 1
        for out in options.channels:
            blocks.append(nn.Sequential(nn.Conv2d(width, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                                        nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True)))
            width = out
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(options.dropout)
        self.feature_dim = width

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        spec = torch.log(self.mel(waveform.float()) + 1e-6)  # [B, mels, frames]
        mean = spec.mean(dim=(1, 2), keepdim=True)
        std = spec.std(dim=(1, 2), keepdim=True).clamp_min(1e-5)
        spec = self.spec_augment((spec - mean) / std)
        x = self.blocks(spec.unsqueeze(1))
        return self.dropout(x).mean(dim=(2, 3))

    def layer_groups(self):
        return groups_by_prefix(self, [(f"block{i}", [f"blocks.{i}"]) for i in range(len(self.blocks))])

    def enable_activation_checkpointing(self) -> None:
        """Recompute each conv block in backward: the first blocks' outputs
        (full spectrogram resolution) are most of the activation memory."""
        checkpoint_modules(self.blocks)

    def fsdp_units(self) -> list[nn.Module]:
        """The conv blocks, input to output."""
        return list(self.blocks)

    def describe(self) -> dict:
        return {"class": "LogmelCnn", "name": "logmel_cnn", "weights": "random init (from scratch)",
                "channels": list(self.options.channels), "n_mels": self.options.n_mels,
                "sample_rate": self.sample_rate, "feature_dim": self.feature_dim}


def build_logmel_cnn(options: LogmelCnnOptions, ctx) -> LogmelCnn:
    with torch.random.fork_rng():
        torch.manual_seed(options.seed)
        return LogmelCnn(options)
