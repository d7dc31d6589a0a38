"""Audio I/O, resampling, mono mix-down, crop/pad and augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ft.errors import DataError
from ft.plugins.speech.audio import Augment, ClipTransform, crop_or_pad, load_waveform, probe, read_audio

from speech_testkit import tone, write


def dominant_frequency(x: torch.Tensor, rate: int) -> float:
    spectrum = torch.fft.rfft(x * torch.hann_window(len(x)))
    return float(spectrum.abs().argmax()) * rate / len(x)


def test_read_8k_sine_back_at_16k(tmp_path):
    t = np.arange(8000) / 8000
    path = write(tmp_path / "sine.wav", (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000)
    assert probe(path).sample_rate == 8000 and probe(path).frames == 8000
    wave = load_waveform(path, 16000)
    assert wave.ndim == 1 and wave.dtype == torch.float32
    assert len(wave) == 16000
    assert dominant_frequency(wave, 16000) == pytest.approx(440, abs=2)
    # no energy above the old Nyquist frequency: the resampler is band-limited
    spectrum = torch.fft.rfft(wave).abs()
    assert spectrum[4100:].max() < 1e-2 * spectrum.max()


def test_stereo_is_mixed_down_and_flac_ogg_read(tmp_path):
    left = tone(300, 0.5, 16000, seed=1)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    for suffix in (".flac", ".ogg"):
        path = write(tmp_path / f"st{suffix}", stereo, 16000)
        raw, rate = read_audio(path)
        assert raw.shape == (len(left), 2) and rate == 16000
        mono = load_waveform(path, 16000)
        assert mono.shape == (len(left),)
        assert float(mono.abs().max()) == pytest.approx(float(np.abs(left).max()) / 2, rel=0.1)


def test_unreadable_and_empty_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really a wav file")
    with pytest.raises(DataError, match="broken.wav") as err:
        read_audio(bad)
    assert "skip_bad" in str(err.value)
    empty = write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(DataError, match="empty"):
        read_audio(empty, where="list.csv: line 3")


def test_eval_crop_is_centred_and_deterministic():
    x = torch.arange(100.0)
    assert torch.equal(crop_or_pad(x, 40, random=False), torch.arange(30.0, 70.0))
    padded = crop_or_pad(x[:10], 20, random=False)
    assert padded.shape == (20,) and torch.equal(padded[5:15], x[:10]) and padded[:5].eq(0).all()
    assert torch.equal(crop_or_pad(x, 40, random=False), crop_or_pad(x, 40, random=False))


def test_train_crop_is_random_but_seeded():
    x = torch.arange(1000.0)
    torch.manual_seed(0)
    starts = [int(crop_or_pad(x, 100, random=True)[0]) for _ in range(20)]
    assert len(set(starts)) > 10
    torch.manual_seed(0)
    assert starts == [int(crop_or_pad(x, 100, random=True)[0]) for _ in range(20)]
    torch.manual_seed(1)
    offsets = {int(crop_or_pad(x[:50], 100, random=True).nonzero()[0]) for _ in range(20)}
    assert len(offsets) > 5  # a short clip lands at random places in the padding


def test_clip_transform_is_deterministic_without_augmentation():
    x = torch.from_numpy(tone(440, 1.0, 16000))
    augment = Augment(gain_db=6.0, noise_snr_db=(10.0, 20.0), noise_prob=1.0)
    evaluation = ClipTransform(8000)
    assert torch.equal(evaluation(x), evaluation(x))
    assert torch.equal(evaluation(x), x[4000:12000])
    train = ClipTransform(8000, random_crop=True, augment=augment)
    a, b = train(x), train(x)
    assert a.shape == b.shape == (8000,) and not torch.equal(a, b)
    # noise at 10-20 dB SNR: the residual after the best gain is 1-10 % of the power
    clean = ClipTransform(16000, random_crop=True, augment=augment)(x)
    gain = float((clean * x).sum() / (x * x).sum())
    residual = float((clean - gain * x).pow(2).mean() / (gain * x).pow(2).mean())
    assert 0.005 < residual < 0.15


def test_speed_perturbation_shifts_pitch_and_length_before_the_crop():
    x = torch.from_numpy(tone(440, 1.0, 16000, harmonics=1))
    faster = Augment(gain_db=0.0, noise_snr_db=None, speeds=(1.1,))
    slower = Augment(gain_db=0.0, noise_snr_db=None, speeds=(0.9,))
    assert faster.active and not Augment(gain_db=0.0, noise_snr_db=None, speeds=(1.0,)).active
    up, down = faster.perturb_speed(x), slower.perturb_speed(x)
    assert up.shape == (14545 + 1,) and down.shape == (17778,)  # 16000 / 1.1 and 16000 / 0.9 samples
    assert dominant_frequency(up, 16000) == pytest.approx(484, abs=4)
    assert dominant_frequency(down, 16000) == pytest.approx(396, abs=4)
    # the crop comes after: every training clip still has the clip length
    transform = ClipTransform(8000, random_crop=True, augment=Augment(0.0, None, 0.0, (0.9, 1.0, 1.1)))
    torch.manual_seed(0)
    lengths = {transform(x).shape[0] for _ in range(10)}
    assert lengths == {8000}
    assert ClipTransform(8000, augment=None)(x).shape == (8000,)
