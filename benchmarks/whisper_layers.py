"""Which Whisper layer carries accent: a frozen probe on every hidden state.

One pass of the frozen Whisper tiny.en encoder over the accent corpus (whole
clips, no augmentation) keeps every hidden state (0 = the convolutional stem,
then each block; the last after the final layer norm), pooled over the clip's
frames (mean, or mean and standard deviation). Each is standardised on train
and fed to a multinomial logistic regression (L-BFGS, L2 strength chosen on
validation); validation and test accuracy per state are printed.

    .venv/bin/python benchmarks/whisper_layers.py              # about 4 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import soundfile as sf
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "recipes" / "data" / "accent_corpus" / "manifest.csv"


def features(manifest: Path, batch: int = 32) -> tuple[list[torch.Tensor], torch.Tensor, list[str]]:
    """Mean-and-std pooled hidden states ``[clips, 2 * width]`` per state, labels, splits."""
    from ft.contracts import BuildContext
    from ft.plugins.speech.frontend import masked_pool
    from ft.plugins.speech.whisper import WhisperOptions, build_whisper

    with manifest.open() as fh:
        rows = list(csv.DictReader(fh))
    classes = sorted({r["label"] for r in rows})
    backbone = build_whisper(WhisperOptions(layer_weights=True), BuildContext()).eval()
    collate = backbone.collate()
    pooled: list[list[torch.Tensor]] = []
    with torch.no_grad():
        for start in range(0, len(rows), batch):
            waves = [torch.from_numpy(sf.read(manifest.parent / r["path"], dtype="float32")[0])
                     for r in rows[start:start + batch]]
            states, valid = backbone.hidden_states(collate([(w, 0) for w in waves])[0])
            pooled.append([masked_pool(h, valid, "mean_std") for h in states])
    per_state = [torch.cat(column) for column in zip(*pooled)]
    labels = torch.tensor([classes.index(r["label"]) for r in rows])
    return per_state, labels, [r["split"] for r in rows]


def probe(x: torch.Tensor, y: torch.Tensor, split: list[str], strengths=(1e-3, 1e-2, 1e-1, 1.0)) -> tuple[float, float]:
    """(val, test) accuracy of the logistic regression whose L2 strength scores best on val."""
    index = {s: torch.tensor([i for i, v in enumerate(split) if v == s]) for s in ("train", "val", "test")}
    mean, std = x[index["train"]].mean(0), x[index["train"]].std(0) + 1e-6
    x = (x - mean) / std
    best = (-1.0, 0.0)
    for strength in strengths:
        weight = torch.zeros(x.shape[1], int(y.max()) + 1, requires_grad=True)
        bias = torch.zeros(weight.shape[1], requires_grad=True)
        optimizer = torch.optim.LBFGS([weight, bias], max_iter=200, line_search_fn="strong_wolfe")

        def closure(optimizer=optimizer, weight=weight, bias=bias, strength=strength):
            optimizer.zero_grad()
            loss = F.cross_entropy(x[index["train"]] @ weight + bias, y[index["train"]]) + strength * weight.pow(2).sum() / 2
            loss.backward()
            return loss

        optimizer.step(closure)
        with torch.no_grad():
            acc = {s: ((x[index[s]] @ weight + bias).argmax(1) == y[index[s]]).float().mean().item() for s in ("val", "test")}
        if acc["val"] > best[0]:
            best = (acc["val"], acc["test"])
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    per_state, labels, split = features(args.manifest)
    print(f"features of {len(labels)} clips in {time.perf_counter() - t0:.0f} s ({torch.get_num_threads()} threads)")
    width = per_state[0].shape[1] // 2
    print(f"{'hidden state':<28}{'pool':<10}{'val acc':>9}{'test acc':>10}")
    for i, x in enumerate(per_state):
        name = "0 (stem)" if i == 0 else f"{i} (block {i}{', final norm' if i == len(per_state) - 1 else ''})"
        for pool, cols in (("mean", x[:, :width]), ("mean_std", x)):
            val, test = probe(cols, labels, split)
            print(f"{name:<28}{pool:<10}{val:>9.3f}{test:>10.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
