"""Helpers of the speech tests: synthetic tones written with soundfile.

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


def write_manifest(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
