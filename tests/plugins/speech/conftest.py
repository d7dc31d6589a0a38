"""Fixtures of the speech tests (helpers live in speech_testkit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from speech_testkit import tone, write


@pytest.fixture
def tone_folder(tmp_path):
    """``make(n_per_class, seconds, rate)`` -> an audio_folder of 3 pitch classes
    (low 200 Hz, mid 400 Hz, high 800 Hz), mixing wav, flac and ogg files."""

    def make(n_per_class: int = 12, seconds: float = 1.0, rate: int = 16000, root: Path | None = None) -> Path:
        root = root or tmp_path / "tones"
        suffixes = (".wav", ".flac", ".ogg")
        for c, (label, freq) in enumerate((("low", 200.0), ("mid", 400.0), ("high", 800.0))):
            for i in range(n_per_class):
                jitter = 1 + 0.04 * ((i % 5) - 2) / 2
                write(root / label / f"spk{i % 4}_{label}_{i:03d}{suffixes[i % 3]}",
                      tone(freq * jitter, seconds * (0.8 + 0.05 * (i % 8)), rate, seed=1000 * c + i),
                      rate)
        return root

    return make
