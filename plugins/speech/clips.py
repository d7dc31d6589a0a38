"""Which clips, with which label, in which split: listing, checking and splitting.

The audio formats turn their source (a folder tree, a CSV manifest) into
:class:`Entry` objects, check every file from its header alone, and assign
splits (a manifest's split column, else speaker-disjoint, else stratified by
class; always seeded). Nothing here decodes audio.
"""

from __future__ import annotations

import csv
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from ft.errors import DataError

from .audio import AUDIO_SUFFIXES, probe

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "dev": "val", "test": "test", "eval": "test"}
BAD_DATA_HINT = "fix or remove it, or set data.skip_bad = true to skip bad files (they are counted in data.json)"


@dataclass
class Entry:
    """One labelled clip; ``where`` names it in errors (file, CSV row)."""

    path: Path
    label: str | None
    speaker: str | None = None
    split: str | None = None
    where: str = ""
    frames: int = 0  # at the file's own rate
    rate: int = 0


# -- listing ------------------------------------------------------------------


def list_folder(root: Path, speaker_pattern: str | None = None) -> list[Entry]:
    if not root.is_dir():
        raise DataError("audio_folder needs a folder with one sub-folder per class", where=str(root))
    pattern = re.compile(speaker_pattern) if speaker_pattern else None
    entries = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for file in sorted(class_dir.rglob("*")):
            if file.suffix.lower() not in AUDIO_SUFFIXES or not file.is_file():
                continue
            speaker = None
            if pattern is not None:
                match = pattern.search(file.stem)
                if match is None:
                    raise DataError(f"file name does not match data.speaker_pattern {speaker_pattern!r}",
                                    where=str(file), hint="fix the pattern or rename the file")
                speaker = match.group(1) if match.groups() else match.group(0)
            entries.append(Entry(file, class_dir.name, speaker, None, str(file)))
    if not entries:
        raise DataError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in class sub-folders", where=str(root),
                        hint="audio_folder expects ROOT/<class>/<clip>.wav")
    return entries


def read_manifest(csv_path: Path, need_label: bool = True) -> tuple[list[Entry], set[str]]:
    """Rows of a CSV manifest; paths resolve against the CSV's folder."""
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            columns = {c.strip() for c in reader.fieldnames or []}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read the CSV: {exc}", where=str(csv_path)) from None
    required = {"path", "label"} if need_label else {"path"}
    if not required <= columns:
        raise DataError(f"the CSV needs columns {sorted(required)} (found {sorted(columns)})", where=str(csv_path),
                        hint="first line: path,label[,speaker][,split]")
    entries = []
    for lineno, row in enumerate(rows, 2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        where = f"{csv_path} row {lineno}"
        if not row.get("path"):
            raise DataError("empty path", where=where)
        label = row.get("label") or None
        if need_label and label is None:
            raise DataError("empty label", where=where)
        split = None
        if "split" in columns:
            split = SPLIT_NAMES.get(row.get("split", "").lower())
            if split is None:
                raise DataError(f"unknown split {row.get('split')!r}", where=where,
                                hint="use train, val or test (or drop the split column for a seeded split)")
        path = Path(row["path"]).expanduser()
        path = path if path.is_absolute() else csv_path.parent / path
        entries.append(Entry(path, label, row.get("speaker") or None, split, f"{where} ({row['path']})"))
    if not entries:
        raise DataError("the CSV has no rows", where=str(csv_path))
    return entries, columns


def list_unlabeled(path: Path) -> list[Entry]:
    if path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file())
        if not files:
            raise DataError("no audio files in the unlabeled folder", where=f"data.unlabeled = {path}")
        return [Entry(f, None, where=str(f)) for f in files]
    return read_manifest(path, need_label=False)[0]


# -- validation ---------------------------------------------------------------


def validate(entries: list[Entry], min_seconds: float, skip_bad: bool, skipped: Counter,
             skipped_files: list) -> list[Entry]:
    """Check every file from its header; return the good entries.

    Without ``skip_bad`` the first bad file stops the run with a DataError
    naming it (and its CSV row); with it, bad files are counted by reason.
    """
    good = []
    for entry in entries:
        reason = None
        if not entry.path.is_file():
            reason, message = "missing", "file not found"
        else:
            try:
                info = probe(entry.path)
            except Exception as exc:
                reason, message = "unreadable", f"cannot read audio: {exc}"
            else:
                entry.frames, entry.rate = info.frames, info.sample_rate
                if info.frames == 0:
                    reason, message = "empty", "the audio file is empty (0 samples)"
                elif info.seconds < min_seconds:
                    reason, message = "too_short", (f"clip is {info.seconds:.3f} s, shorter than "
                                                    f"data.min_seconds = {min_seconds:g}")
        if reason is None:
            good.append(entry)
            continue
        if not skip_bad:
            raise DataError(message, where=entry.where, hint=BAD_DATA_HINT)
        skipped[reason] += 1
        skipped_files.append(f"{entry.where}: {reason}")
    return good


# -- splitting ----------------------------------------------------------------


def _take(items: list, fraction: float, minimum: int) -> int:
    return 0 if fraction <= 0 else max(minimum, round(len(items) * fraction))


def stratified_split(entries: list[Entry], val_fraction: float, test_fraction: float, seed: int) -> None:
    """Per class: a seeded shuffle, then val and test take their fractions."""
    rng = random.Random(seed)
    by_label = defaultdict(list)
    for e in entries:
        by_label[e.label].append(e)
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        n_val = _take(group, val_fraction, 1 if len(group) >= 3 else 0)
        n_test = _take(group, test_fraction, 1 if len(group) >= 3 else 0)
        for i, e in enumerate(group):
            e.split = "val" if i < n_val else "test" if i < n_val + n_test else "train"


def speaker_split(entries: list[Entry], val_fraction: float, test_fraction: float, seed: int) -> None:
    """Whole speakers go to val or test, per class (by each speaker's most
    common label), seeded; a class with fewer than 3 speakers stays in train."""
    rng = random.Random(seed)
    labels_of = defaultdict(Counter)
    for e in entries:
        labels_of[e.speaker][e.label] += 1
    by_label = defaultdict(list)
    for speaker in sorted(labels_of):
        by_label[labels_of[speaker].most_common(1)[0][0]].append(speaker)
    split_of = {}
    for label in sorted(by_label):
        speakers = by_label[label]
        rng.shuffle(speakers)
        n_val = _take(speakers, val_fraction, 1) if len(speakers) >= 3 else 0
        n_test = _take(speakers, test_fraction, 1) if len(speakers) >= 3 else 0
        for i, s in enumerate(speakers):
            split_of[s] = "val" if i < n_val else "test" if i < n_val + n_test else "train"
    for e in entries:
        e.split = split_of[e.speaker]


def limit_per_class(entries: list[Entry], limit: int | None, seed: int) -> list[Entry]:
    if limit is None:
        return entries
    rng = random.Random(seed)
    by_label = defaultdict(list)
    for e in entries:
        by_label[e.label].append(e)
    kept = []
    for label in sorted(by_label):
        group = list(by_label[label])
        rng.shuffle(group)
        kept += group[:limit]
    return sorted(kept, key=lambda e: str(e.path))
