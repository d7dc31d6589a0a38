"""Audio in, fixed-length waveforms out: reading, resampling, crop/pad, augmentation.

torchaudio >= 2.9 has no audio I/O of its own, so files are read with
``soundfile`` (wav, flac, ogg/vorbis/opus, ...); resampling uses
``torchaudio.functional.resample``. Every function here works on 1-D float32
tensors (one mono clip); batching is the data loader's job.

Randomness (training crops, gain, noise) draws from torch's global RNG on
purpose: the trainer seeds it and restores it on resume, so a resumed run sees
the same crops as an unbroken one.
"""

from __future__ import annotations

import math
from fractions import Fraction
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ft.errors import DataError

#: file suffixes ``audio_folder`` and unlabeled folders pick up
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif")

#: what to do about a bad clip while ``data.skip_bad`` is off
BAD_DATA_HINT = ("fix or remove it, or set data.skip_bad = true: every clip is then decoded once before "
                 "training and bad ones are skipped and counted in data.json")
#: a clip fails while training although ``data.skip_bad`` decoded every clip when the data was built
CHANGED_DATA_HINT = ("data.skip_bad = true decoded this file without error when the data was built, so it "
                     "changed during the run: restore it and resume (ft run --resume), or remove it and start "
                     "a new run (the data would differ from the checkpoint's)")


@dataclass(frozen=True)
class AudioInfo:
    """What ``soundfile.info`` says about a file, without decoding it."""

    frames: int
    sample_rate: int
    channels: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def probe(path: Path) -> AudioInfo:
    """Header facts of an audio file; raises ``RuntimeError``/``OSError`` if unreadable."""
    import soundfile

    info = soundfile.info(str(path))
    return AudioInfo(int(info.frames), int(info.samplerate), int(info.channels))


def read_audio(path: str | Path, where: str | None = None, hint: str = BAD_DATA_HINT) -> tuple[np.ndarray, int]:
    """Decode a file to ``([samples, channels] float32 numpy, sample_rate)``.

    An unreadable or empty file is a :class:`ft.DataError` naming the file
    (``where`` overrides the location shown, e.g. ``manifest.csv: line 12
    (clips/a.wav)``) with ``hint``.
    """
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, OSError...
        raise DataError(f"cannot read audio: {exc}", where=where or str(path), hint=hint) from None
    if data.shape[0] == 0:
        raise DataError("the audio file is empty (0 samples)", where=where or str(path), hint=hint)
    return data, int(rate)


def to_mono(data: np.ndarray) -> np.ndarray:
    """``[samples, channels]`` -> ``[samples]`` by averaging the channels."""
    if data.ndim == 1:
        return data
    return data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)


def resample(waveform: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited (sinc) resampling along the last dimension."""
    if orig_rate == new_rate:
        return waveform
    import torchaudio.functional as AF

    return AF.resample(waveform, orig_rate, new_rate)


def load_waveform(path: str | Path, sample_rate: int, where: str | None = None,
                  hint: str = BAD_DATA_HINT) -> torch.Tensor:
    """Read, mix down to mono and resample to ``sample_rate``: a 1-D float32 tensor.

    Mixing down happens in numpy: tiny multi-threaded torch ops are slow on a
    busy machine, and this runs once per clip.
    """
    data, rate = read_audio(path, where, hint)
    mono = torch.from_numpy(np.ascontiguousarray(to_mono(data)))
    return resample(mono, rate, sample_rate)


def crop_or_pad(waveform: torch.Tensor, length: int, random: bool, pad: bool = True) -> torch.Tensor:
    """Exactly ``length`` samples: a crop of a longer clip, zero padding for a shorter one
    (``pad=False``: a shorter clip stays as it is).

    ``random=False`` (evaluation) centres both the crop and the padding, so the
    result is a pure function of the clip; ``random=True`` (training) draws
    the crop offset, and the place of a short clip inside the padding, from
    torch's global RNG.
    """
    n = waveform.shape[-1]
    if n == length:
        return waveform
    if n > length:
        start = int(torch.randint(0, n - length + 1, ()).item()) if random else (n - length) // 2
        return waveform[..., start:start + length]
    if not pad:
        return waveform
    left = int(torch.randint(0, length - n + 1, ()).item()) if random else (length - n) // 2
    return torch.nn.functional.pad(waveform, (left, length - n - left))


@dataclass(frozen=True)
class Augment:
    """Waveform augmentation for training: speed perturbation, random gain and additive noise.

    ``speeds``: speed factors drawn uniformly per clip (e.g. ``(0.9, 1.0, 1.1)``,
    Kaldi's speed perturbation): the clip is resampled so it plays ``factor``
    times faster, which shifts pitch and formants like another voice would;
    applied before the crop (``perturb_speed``). Empty = off.

    ``gain_db``: gain drawn uniformly from ``[-gain_db, +gain_db]`` dB (0 = off).
    ``noise_snr_db``: ``(low, high)`` signal-to-noise ratio in dB of added
    white noise, drawn uniformly; None = off. ``noise_prob``: how often noise
    is added.
    """

    gain_db: float = 6.0
    noise_snr_db: tuple[float, float] | None = (15.0, 40.0)
    noise_prob: float = 0.5
    speeds: tuple[float, ...] = ()

    @property
    def active(self) -> bool:
        return (self.gain_db > 0 or (self.noise_snr_db is not None and self.noise_prob > 0)
                or any(f != 1.0 for f in self.speeds))

    def perturb_speed(self, waveform: torch.Tensor) -> torch.Tensor:
        """The clip played at a speed factor drawn from ``speeds`` (a rational
        resampling: factor 1.1 is 17,600 -> 16,000 samples per second)."""
        if not self.speeds:
            return waveform
        factor = self.speeds[int(torch.randint(0, len(self.speeds), ()).item())]
        fraction = Fraction(factor).limit_denominator(100)
        return resample(waveform, fraction.numerator, fraction.denominator)

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor:
        if self.gain_db > 0:
            gain = (torch.rand(()) * 2 - 1) * self.gain_db
            waveform = waveform * (10 ** (gain / 20))
        if self.noise_snr_db is not None and self.noise_prob > 0 and torch.rand(()) < self.noise_prob:
            low, high = self.noise_snr_db
            snr = low + torch.rand(()) * (high - low)
            power = waveform.pow(2).mean().clamp_min(1e-10)
            noise = torch.randn_like(waveform) * torch.sqrt(power / (10 ** (snr / 10)))
            waveform = waveform + noise
        return waveform


class ClipTransform:
    """The per-example waveform pipeline of one split.

    decoded waveform (mono, at the backbone's rate) -> speed perturbation
    (``augment.speeds``, training only) -> crop/pad to
    ``clip_samples`` (random offset if ``random_crop``, else centred; ``pad=False``
    leaves shorter clips unpadded, for backbones that batch variable lengths) ->
    ``augment`` (training only; None = off) -> the backbone's own per-example step
    (``backbone.preprocess(train)``, e.g. Resemblyzer's volume normalisation).
    ``clip_samples=None`` keeps the whole clip (only for batch size 1).
    A plain class, not a closure, so data-loader workers can pickle it.
    """

    def __init__(self, clip_samples: int | None, random_crop: bool = False, augment: Augment | None = None,
                 backbone_step: Callable[[torch.Tensor], torch.Tensor] | None = None, pad: bool = True):
        self.clip_samples = clip_samples
        self.pad = pad
        self.random_crop = random_crop
        self.augment = augment if (augment is not None and augment.active) else None
        self.backbone_step = backbone_step

    @property
    def random(self) -> bool:
        """True if the output can differ between calls on the same clip."""
        return self.random_crop or self.augment is not None

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor:
        if self.augment is not None:
            waveform = self.augment.perturb_speed(waveform)
        if self.clip_samples is not None:
            waveform = crop_or_pad(waveform, self.clip_samples, random=self.random_crop, pad=self.pad)
        if self.augment is not None:
            waveform = self.augment(waveform)
        if self.backbone_step is not None:
            waveform = self.backbone_step(waveform)
        return waveform


def seconds_to_samples(seconds: float, sample_rate: int) -> int:
    return max(1, int(math.floor(seconds * sample_rate + 0.5)))
