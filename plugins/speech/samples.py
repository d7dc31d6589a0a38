"""Tiny sample data sets of the audio formats, for the conformance kit
(:mod:`ft.testing`): 3 classes of half-second harmonic tones at 16 kHz, 5
clips each, written with soundfile. Each function writes under ``folder``
and returns the ``[data]`` options (without ``format``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ft.csv_table import write_csv

RATE, SECONDS, PER_CLASS = 16_000, 0.5, 5
CLASSES = {"low": 220.0, "mid": 440.0, "high": 880.0}
#: a small log-mel CNN and the packaged Resemblyzer encoder
LOGMEL_SAMPLE = {"n_mels": 16, "channels": [8, 16]}
RESEMBLYZER_SAMPLE: dict = {}


def _tone(freq: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * k * freq * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3))
    return (0.3 * x / np.abs(x).max() + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def _write_clips(root: Path) -> list[tuple[str, str]]:
    import soundfile

    rows = []
    for c, (name, freq) in enumerate(CLASSES.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(PER_CLASS):
            soundfile.write(str(root / name / f"{i}.wav"), _tone(freq * (1 + 0.02 * i), seed=c * 10 + i), RATE)
            rows.append((f"{name}/{i}.wav", name))
    return rows


def audio_folder_sample(folder: Path) -> dict:
    """``ROOT/<class>/<clip>.wav``."""
    root = Path(folder).resolve() / "clips"
    _write_clips(root)
    return {"path": str(root), "clip_seconds": SECONDS, "val_fraction": 0.2, "test_fraction": 0.0}


def audio_manifest_sample(folder: Path) -> dict:
    """A CSV ``path,label`` next to the clips."""
    root = Path(folder).resolve()
    rows = _write_clips(root / "clips")
    manifest = root / "manifest.csv"
    write_csv(manifest, ["path", "label"], [(f"clips/{p}", label) for p, label in rows])
    return {"path": str(manifest), "clip_seconds": SECONDS, "val_fraction": 0.2, "test_fraction": 0.0}
