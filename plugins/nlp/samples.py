"""Tiny sample data sets of the text formats, for the conformance kit
(:mod:`ft.testing`): 24 short sentiment snippets. Each function writes under
``folder`` and returns the ``[data]`` options (without ``format``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

#: all-MiniLM-L6-v2 from its package, short inputs for speed
MINILM_SAMPLE = {"weights": "packaged", "max_length": 16}

_GOOD = ("a warm and funny film", "great acting and a clever plot", "I loved every minute",
         "beautiful, moving and smart", "the best comedy this year", "a delight from start to end")
_BAD = ("a dull and lifeless mess", "boring, slow and too long", "I hated the ending",
        "the plot makes no sense", "a waste of a good cast", "flat jokes and bad acting")


def _rows() -> list[tuple[str, str]]:
    return [(text, label) for i in range(2) for good, bad in zip(_GOOD, _BAD)
            for text, label in ((good if i == 0 else good + " indeed", "positive"),
                                (bad if i == 0 else bad + " indeed", "negative"))]


def _table(folder: Path, name: str, delimiter: str) -> dict:
    root = Path(folder).resolve()
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(["text", "label"])
        writer.writerows(_rows())
    return {"path": str(path), "val_fraction": 0.25}


def text_csv_sample(folder: Path) -> dict:
    """``text,label`` rows."""
    return _table(folder, "reviews.csv", ",")


def text_tsv_sample(folder: Path) -> dict:
    """The same rows, tab-separated."""
    return _table(folder, "reviews.tsv", "\t")


def text_jsonl_sample(folder: Path) -> dict:
    """The same rows as JSON lines."""
    root = Path(folder).resolve()
    root.mkdir(parents=True, exist_ok=True)
    path = root / "reviews.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in _rows()))
    return {"path": str(path), "val_fraction": 0.25}


SAMPLES = {"csv": text_csv_sample, "tsv": text_tsv_sample, "jsonl": text_jsonl_sample}
