"""Classical accent baseline: MFCC statistics + logistic regression.

Each clip -> 20 MFCCs (+ deltas and delta-deltas; 16 kHz, 25 ms windows, 10 ms
hop, 40 mel bands) -> mean and standard deviation over frames (120 numbers)
-> standardised -> multinomial logistic regression. The regularisation C is
chosen on the validation split; the test split is scored once. Same manifest
and splits as recipes/speech_accent.toml.

    .venv/bin/python benchmarks/speech_mfcc_baseline.py
    .venv/bin/python benchmarks/speech_mfcc_baseline.py --manifest my_corpus/manifest.csv --limit 20
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MANIFEST = REPO / "recipes" / "data" / "accent_corpus" / "manifest.csv"


def mfcc_statistics(paths: list[Path], sample_rate: int = 16000) -> np.ndarray:
    """``[len(paths), 120]``: mean and std over frames of MFCC, delta, delta-delta."""
    import torchaudio.functional as AF
    import torchaudio.transforms as T

    from ft.plugins.speech.audio import load_waveform

    mfcc = T.MFCC(sample_rate=sample_rate, n_mfcc=20,
                  melkwargs={"n_fft": 400, "hop_length": 160, "n_mels": 40, "center": True})
    rows = []
    with torch.no_grad():
        for path in paths:
            coeffs = mfcc(load_waveform(path, sample_rate))  # [20, frames]
            d1 = AF.compute_deltas(coeffs)
            feats = torch.cat([coeffs, d1, AF.compute_deltas(d1)])
            rows.append(torch.cat([feats.mean(1), feats.std(1)]).numpy())
    return np.stack(rows)


def load_splits(manifest: Path, limit: int | None = None, seed: int = 0) -> dict[str, tuple[list[Path], list[str]]]:
    """The manifest's splits (its split column), optionally N clips per class per split."""
    from ft.plugins.speech.clips import limit_per_class, read_manifest

    entries, columns = read_manifest(manifest)
    if "split" not in columns:
        sys.exit(f"{manifest}: this baseline needs a split column (train/val/test)")
    out = {}
    for split in ("train", "val", "test"):
        chosen = limit_per_class([e for e in entries if e.split == split], limit, seed)
        out[split] = ([e.path for e in chosen], [e.label for e in chosen])
    return out


def run(manifest: Path = DEFAULT_MANIFEST, limit: int | None = None, quiet: bool = False) -> dict:
    """Fit and score the baseline; returns accuracies and wall seconds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t0 = time.perf_counter()
    splits = load_splits(manifest, limit)
    feats = {s: mfcc_statistics(paths) for s, (paths, _) in splits.items()}
    t_feats = time.perf_counter() - t0
    best = None
    for c in (0.01, 0.03, 0.1, 0.3, 1.0, 3.0):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
        model.fit(feats["train"], splits["train"][1])
        val = model.score(feats["val"], splits["val"][1])
        if not quiet:
            print(f"  C={c:<5g} val accuracy {val:.4f}")
        if best is None or val > best[0]:
            best = (val, c, model)
    val, c, model = best
    test = model.score(feats["test"], splits["test"][1])
    seconds = time.perf_counter() - t0
    return {"method": "MFCC stats + logistic regression", "C": c, "val_accuracy": val, "test_accuracy": test,
            "seconds": seconds, "feature_seconds": t_feats,
            "sizes": {s: len(v[0]) for s, v in splits.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--limit", type=int, default=None, help="at most N clips per class in each split")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; per-clip MFCCs are tiny ops, and on a busy 2-core machine two "
                             "OpenMP threads made them 60x slower than one")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    r = run(args.manifest, args.limit)
    print(f"MFCC+LR: test accuracy {r['test_accuracy']:.4f} (val {r['val_accuracy']:.4f}, C={r['C']:g}); "
          f"{r['sizes']}; wall {r['seconds']:.1f} s (features {r['feature_seconds']:.1f} s), "
          f"{torch.get_num_threads()} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
