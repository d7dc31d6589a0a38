"""Which clips, with which label, in which split: listing, checking and splitting.

The audio formats turn their source (a folder tree, a CSV manifest) into
:class:`Entry` objects, check every file from its header and split them (a
manifest's split column, else speaker-disjoint, else stratified by class;
always seeded). The build and the cheap ``check`` of ``ft validate`` list the
data with the same functions. Nothing here decodes audio.

A place in a manifest is ``FILE: line N``: the 1-based line of the file (the
header is line 1).
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from ft.csv_table import drop_missing as drop_missing_files
from ft.csv_table import read_csv as read_table
from ft.errors import DataError

from .audio import AUDIO_SUFFIXES, BAD_DATA_HINT, probe

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "dev": "val", "test": "test", "eval": "test"}
MANIFEST_COLUMNS = "path,label[,speaker][,split]"


@dataclass
class Entry:
    """One labelled clip; ``where`` names it in errors (the file, or
    ``manifest.csv: line 5 (clips/a.wav)``), ``ref`` is the part after the
    CSV's name (``line 5 (clips/a.wav)``; empty for a listed folder)."""

    path: Path
    label: str | None
    speaker: str | None = None
    split: str | None = None
    where: str = ""
    frames: int = 0  # at the file's own rate
    rate: int = 0
    ref: str = ""


# -- listing ------------------------------------------------------------------


def _audio_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file())


def list_folder(root: Path, speaker_pattern: str | None = None) -> list[Entry]:
    """One entry per audio file under ``root/<class>/``; a missing or empty
    folder, a file given for the folder and a class folder without audio are
    errors naming the path."""
    if not root.is_dir():
        if root.is_file():
            raise DataError("audio_folder needs a folder with one sub-folder per class, found a file",
                            where=str(root), hint='for a CSV manifest set data.format = "audio_manifest"')
        raise DataError("folder not found", where=str(root),
                        hint="check data.path (a relative path starts at the recipe's folder)")
    pattern = re.compile(speaker_pattern) if speaker_pattern else None
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        loose = [f for f in root.iterdir() if f.suffix.lower() in AUDIO_SUFFIXES]
        hint = "audio_folder expects ROOT/<class>/<clip>.wav"
        if loose:
            hint = f"move its {len(loose)} audio files into one sub-folder per class: ROOT/<class>/<clip>.wav"
        raise DataError("no class sub-folders", where=str(root), hint=hint)
    entries = []
    for class_dir in class_dirs:
        files = _audio_files(class_dir)
        if not files:
            raise DataError(f"class folder {class_dir.name!r} has no audio files ({', '.join(AUDIO_SUFFIXES)})",
                            where=str(class_dir), hint="add clips or remove the empty folder")
        for file in files:
            speaker = None
            if pattern is not None:
                match = pattern.search(file.stem)
                if match is None:
                    raise DataError(f"file name does not match data.speaker_pattern {speaker_pattern!r}",
                                    where=str(file), hint="fix the pattern or rename the file")
                speaker = match.group(1) if match.groups() else match.group(0)
            entries.append(Entry(file, class_dir.name, speaker, None, str(file)))
    return entries


def read_csv(csv_path: Path, columns: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The manifest's header and ``(line, row)`` pairs (:func:`ft.csv_table.read_csv`)."""
    return read_table(csv_path, columns, item="clip",
                      folder_hint='for ROOT/<class>/<clip> folders set data.format = "audio_folder"')


def read_manifest(csv_path: Path, need_label: bool = True) -> tuple[list[Entry], set[str]]:
    """Rows of a CSV manifest and its column names; paths resolve against the CSV's folder."""
    header, rows = read_csv(csv_path, MANIFEST_COLUMNS if need_label else "path")
    columns = set(header)
    required = {"path", "label"} if need_label else {"path"}
    if not required <= columns:
        case = {c.lower() for c in columns} >= required
        raise DataError(f"the CSV needs columns {sorted(required)} (found {sorted(columns)})",
                        where=f"{csv_path}: line 1", hint=f"first line: {MANIFEST_COLUMNS if need_label else 'path'}"
                        + (" (column names are lower case)" if case else ""))
    if not rows:
        raise DataError("the CSV has a header line but no rows", where=str(csv_path),
                        hint="add one line per clip below the header")
    entries = []
    for line, row in rows:
        where = f"{csv_path}: line {line}"
        if not row.get("path"):
            raise DataError("empty path", where=where)
        label = row.get("label") or None
        if need_label and label is None:
            raise DataError("empty label", where=where, hint="every clip needs a label")
        split = None
        if "split" in columns:
            split = SPLIT_NAMES.get(row.get("split", "").lower())
            if split is None:
                raise DataError(f"unknown split {row.get('split')!r}", where=where,
                                hint="use train, val or test (or drop the split column for a seeded split)")
        path = Path(row["path"]).expanduser()
        path = path if path.is_absolute() else csv_path.parent / path
        ref = f"line {line} ({row['path']})"
        entries.append(Entry(path, label, row.get("speaker") or None, split, f"{csv_path}: {ref}", ref=ref))
    return entries, columns


def manifest_split_method(entries: list[Entry], columns: set[str]) -> str:
    """``column`` (the split column), ``speaker`` (a speaker column: every row
    needs one) or ``stratified``."""
    method = "column" if "split" in columns else "speaker" if "speaker" in columns else "stratified"
    if method == "speaker":
        missing = next((e for e in entries if e.speaker is None), None)
        if missing is not None:
            raise DataError("empty speaker (a speaker column needs a value on every row)",
                            where=missing.where,
                            hint="fill it in, or drop the column for a split stratified by class")
    return method


def list_unlabeled(path: Path) -> list[Entry]:
    if path.is_dir():
        files = _audio_files(path)
        if not files:
            raise DataError("no audio files in the unlabeled folder", where=f"data.unlabeled = {path}")
        return [Entry(f, None, where=str(f)) for f in files]
    return read_manifest(path, need_label=False)[0]


# -- validation ---------------------------------------------------------------


def drop_missing(entries: list[Entry], skip_bad: bool, skipped: Counter, skipped_files: list[str],
                 where: str) -> list[Entry]:
    """The entries whose file exists (:func:`ft.csv_table.drop_missing`)."""
    return drop_missing_files(entries, skip_bad, skipped, skipped_files, where, kind="audio")


def validate(entries: list[Entry], min_seconds: float, skip_bad: bool, skipped: Counter,
             skipped_files: list, where: str = "") -> list[Entry]:
    """Check that every file exists (see :func:`drop_missing`) and is
    readable from its header; return the good entries.

    Without ``skip_bad`` the first unreadable, empty or too short file stops
    the run with a DataError naming it (and its CSV line); with it, bad files
    are counted by reason.
    """
    good = []
    for entry in drop_missing(entries, skip_bad, skipped, skipped_files, where):
        reason = None
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


def require_classes(listed: list[Entry], usable: list[Entry], where: str) -> list[str]:
    """The sorted class names of ``listed``: at least two, and each with a
    usable clip left after bad files were skipped."""
    classes = sorted({e.label for e in listed})
    if len(classes) < 2:
        raise DataError(f"classification needs at least 2 classes, found {classes}", where=where)
    lost = sorted(set(classes) - {e.label for e in usable})
    if lost:
        raise DataError(f"class(es) {', '.join(map(repr, lost))} have no usable clips", where=where,
                        hint="every clip of it was skipped as bad (data.skip_bad; listed in data.json): fix them")
    return classes


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
