"""Accent accuracy per val/test voice of finished accent-corpus runs.

The accent corpus's val and test splits each have 4 voice variants per
accent (speakers.csv); a split's accuracy is their average, and one hard
voice can move it by many points. This scores each run directory's model on
every val and test clip (``ft.predict_run``) and prints accuracy per split
and voice variant, and the most frequent confusions on test.

    .venv/bin/python benchmarks/speech_per_voice.py runs/speech_accent-<time> [more run dirs]
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "recipes" / "data" / "accent_corpus"


def per_voice(run_dir: Path, corpus: Path = CORPUS) -> tuple[dict[tuple[str, str], float], Counter]:
    """``{(split, variant): accuracy}`` and the test confusions ``(true, predicted) -> count``."""
    import ft

    with (corpus / "manifest.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] in ("val", "test")]
    with (corpus / "speakers.csv").open() as fh:
        variant = {r["speaker"]: r["variant"] or "(none)" for r in csv.DictReader(fh)}
    predicted: list[str] = []
    for start in range(0, len(rows), 64):
        top = ft.predict_run(run_dir, [str(corpus / r["path"]) for r in rows[start:start + 64]], top_k=1)
        predicted += [p[0][0] for p in top]
    hits: dict[tuple[str, str], list[bool]] = defaultdict(list)
    confusions: Counter = Counter()
    for row, guess in zip(rows, predicted):
        hits[(row["split"], variant[row["speaker"]])].append(guess == row["label"])
        if row["split"] == "test" and guess != row["label"]:
            confusions[(row["label"], guess)] += 1
    return {key: sum(v) / len(v) for key, v in sorted(hits.items())}, confusions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for run in args.runs:
        accuracy, confusions = per_voice(run)
        print(f"{run}:")
        for split in ("val", "test"):
            cells = [f"{voice} {acc:.3f}" for (s, voice), acc in accuracy.items() if s == split]
            print(f"  {split:<5} " + ", ".join(cells))
        print("  test confusions (true -> predicted): "
              + ", ".join(f"{t} -> {p} {n}" for (t, p), n in confusions.most_common(5)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
