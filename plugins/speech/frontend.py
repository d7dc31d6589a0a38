"""What every speech backbone shares: its sample rate, SpecAugment, volume normalisation, masked pooling.

A speech backbone takes fixed-length mono waveforms ``[B, T]`` at its own
``sample_rate`` and computes its features itself (torchaudio transforms in
``forward``), so the front end the weights were trained with travels with the
weights. SpecAugment runs inside ``forward`` only while the backbone is in
training mode: a frozen backbone (kept in eval mode by the trainer) sees clean
spectrograms, which is also what makes frozen-feature caching valid.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from ft.contracts import Backbone
from ft.specs import Options


class SpecAugmentOptions(Options):
    """SpecAugment (Park et al. 2019) on the backbone's spectrogram, training only."""

    spec_augment: bool = Field(True, description="frequency and time masking while training")
    freq_masks: int = Field(2, ge=0, description="frequency masks per example")
    freq_mask_width: int = Field(8, ge=0, description="largest frequency mask, in mel bands")
    time_masks: int = Field(2, ge=0, description="time masks per example")
    time_mask_width: int = Field(20, ge=0, description="largest time mask, in frames")
    freq_warp: float = Field(0.0, ge=0, lt=0.3, description="random warp of the frequency axis while training "
                             "(VTLP-like): the low, middle and high thirds of the spectrum each move by their "
                             "own factor in 1 ± freq_warp, as formants differ between voices; 0: off")


class SpecAugment(nn.Module):
    """Independent frequency and time masks per example on ``[B, freq, time]``,
    after an optional frequency warp (:func:`warp_frequencies`).

    Masked cells are set to 0: silence for a power spectrogram, the mean for
    a normalised log spectrogram. Identity in eval mode.
    """

    def __init__(self, options: SpecAugmentOptions):
        super().__init__()
        import torchaudio.transforms as T

        self.enabled, self.warp = options.spec_augment, options.freq_warp
        self.freq = nn.ModuleList(T.FrequencyMasking(options.freq_mask_width, iid_masks=True)
                                  for _ in range(options.freq_masks if options.freq_mask_width else 0))
        self.time = nn.ModuleList(T.TimeMasking(options.time_mask_width, iid_masks=True)
                                  for _ in range(options.time_masks if options.time_mask_width else 0))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return spec
        if self.warp:
            spec = warp_frequencies(spec, self.warp)
        if not self.enabled:
            return spec
        x = spec.unsqueeze(1)  # iid masks need [B, C, freq, time]
        for mask in [*self.freq, *self.time]:
            x = mask(x)
        return x.squeeze(1)


def warp_frequencies(spec: torch.Tensor, amount: float, knots: int = 2) -> torch.Tensor:
    """Warp the frequency axis of ``spec [B, freq, time]``, each example its own way.

    The axis is cut into ``knots + 1`` equal parts; each inner knot moves by
    its own random factor in ``1 ± amount`` while both ends stay put, and the
    spectrum is resampled (linearly) along the piecewise-linear map. A
    uniform factor would be vocal tract length perturbation (Jaitly and
    Hinton 2013); separate factors per region also move the first formant
    one way and the second another, as voices do. ``amount < 1 / (knots +
    1)`` keeps the map monotone.
    """
    batch, bins = spec.shape[0], spec.shape[1]
    top = bins - 1
    fixed = torch.linspace(0, top, knots + 2, device=spec.device)  # knots where they belong
    moved = fixed.repeat(batch, 1)
    scale = 1 + (torch.rand(batch, knots, device=spec.device) * 2 - 1) * amount
    moved[:, 1:-1] = fixed[1:-1] * scale  # where each knot's content goes
    # output bin f shows the source position on the segment of `moved` that holds f
    out = torch.arange(bins, device=spec.device, dtype=spec.dtype).expand(batch, bins)
    segment = (torch.searchsorted(moved.contiguous(), out.contiguous(), right=True) - 1).clamp(0, knots)
    lo, hi = moved.gather(1, segment), moved.gather(1, segment + 1)
    src_lo, src_hi = fixed[segment], fixed[segment + 1]
    source = (src_lo + (out - lo) / (hi - lo) * (src_hi - src_lo)).clamp(0, top)
    below = source.floor().long().clamp(max=top - 1)
    frac = (source - below)[..., None]
    low_rows = spec.gather(1, below[..., None].expand(-1, -1, spec.shape[2]))
    high_rows = spec.gather(1, (below + 1)[..., None].expand(-1, -1, spec.shape[2]))
    return low_rows * (1 - frac) + high_rows * frac


class VolumeNormalize:
    """Scale a clip to ``target_dbfs`` RMS (Resemblyzer's ``normalize_volume``).

    ``increase_only``: quieter clips are raised, louder ones left alone, as in
    the data the Resemblyzer encoder was trained on. Silence stays silence.
    """

    def __init__(self, target_dbfs: float = -30.0, increase_only: bool = True):
        self.target_dbfs, self.increase_only = target_dbfs, increase_only

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor:
        rms = waveform.pow(2).mean().sqrt()
        if rms <= 1e-8:
            return waveform
        change = self.target_dbfs - 20 * torch.log10(rms)
        if self.increase_only and change < 0:
            return waveform
        return waveform * (10 ** (change / 20))


def as_constants(module: nn.Module) -> nn.Module:
    """Make a front end's buffers (STFT window, mel filters) non-persistent.

    They are fixed functions of the options, not weights: keeping them out of
    the state dict keeps checkpoints to the weights (and safetensors refuses
    torchaudio's window, a view of a larger storage).
    """
    for sub in module.modules():
        for name, buffer in list(sub.named_buffers(recurse=False)):
            sub.register_buffer(name, buffer.clone(), persistent=False)
    return module


class SpeechBackbone(Backbone):
    """Base of the speech backbones: mono waveforms ``[B, T]`` at ``sample_rate``.

    ``preprocess(train)`` is the backbone's own per-example waveform step,
    run after the data format's crop/pad and augmentation (None = nothing).
    ``variable_length``: the audio formats crop clips to their length but do
    not pad shorter ones; the backbone's ``collate`` pads each batch and
    passes the lengths (Whisper).
    """

    sample_rate: int = 16000
    variable_length: bool = False

    def preprocess(self, train: bool):
        return None


def masked_pool(hidden: torch.Tensor, valid: torch.Tensor, pool: str) -> torch.Tensor:
    """Mean (and standard deviation) over the valid steps of ``hidden [B, S, D]``."""
    mask = valid[..., None].to(hidden.dtype)
    count = mask.sum(1).clamp_min(1)
    mean = (hidden * mask).sum(1) / count
    if pool == "mean":
        return mean
    var = ((hidden - mean[:, None]) ** 2 * mask).sum(1) / count
    return torch.cat([mean, (var + 1e-5).sqrt()], dim=-1)
