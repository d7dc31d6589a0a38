"""Synthetic audio for the speech tests: tones written with soundfile.

Nothing here needs a system package: clips are generated in the test, and the
accent corpus is used only where it is present in the repository.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
ACCENT_MANIFEST = REPO / "recipes" / "data" / "accent_corpus" / "manifest.csv"

needs_corpus = pytest.mark.skipif(not ACCENT_MANIFEST.exists(), reason="accent corpus not in the repository")


def tone(freq: float, seconds: float, rate: int, seed: int = 0, harmonics: int = 3) -> np.ndarray:
    """A harmonic tone with random phase, slight vibrato and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f = freq * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))
    phase = 2 * np.pi * np.cumsum(f) / rate
    x = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, harmonics + 1))
    x = 0.3 * x / np.abs(x).max() + 0.01 * rng.standard_normal(len(t))
    return x.astype(np.float32)


def write(path: Path, samples: np.ndarray, rate: int) -> Path:
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), samples, rate)
    return path


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


def write_manifest(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
