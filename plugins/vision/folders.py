"""Dataset formats ``image_folder`` and ``image_csv``: labelled image files.

``image_folder``: ``ROOT/<class>/<image>`` (images may sit in nested folders
below their class folder), or ``ROOT/train/<class>/...`` with optional
``ROOT/val/...`` (also ``valid``, ``validation``) and ``ROOT/test/...``.
``image_csv``: a CSV with columns ``path,label`` and optionally ``split``
(train / val / test); paths are relative to the CSV's folder.

Every file is checked before training (PIL's ``verify``: header and
structure, no full decode): an unreadable image is a DataError naming it, or
with ``skip_bad = true`` it is skipped and counted in data.json. A class
folder without images, and a CSV label outside ``classes``, are errors too.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
from pydantic import Field, field_validator

from ft.contracts import Backbone, DataBundle
from ft.errors import DataError
from ft.specs import ExistingPath

from .data import BAD_DATA_HINT, FileSource, VisionDataOptions, build_bundle, file_line
from .transforms import check_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "dev": "val", "test": "test", "eval": "test"}


class ClassListOptions(VisionDataOptions):
    classes: list[str] | None = Field(None, description="the class names, in output order; any other label or "
                                                        "class folder is an error (default: sorted labels found)")

    @field_validator("classes")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if len(value) < 2:
                raise ValueError("classification needs at least 2 classes")
            dupes = sorted(c for c, n in Counter(value).items() if n > 1)
            if dupes:
                raise ValueError(f"repeated class name(s): {dupes}")
        return value


class FolderOptions(ClassListOptions):
    """``image_folder``: one sub-folder per class (optionally under train/val/test)."""

    path: ExistingPath = Field(..., description="ROOT with <class>/ folders, or train/ [val/] [test/] folders")


class CsvOptions(ClassListOptions):
    """``image_csv``: a CSV with columns path,label[,split]."""

    path: ExistingPath = Field(..., description="the CSV file; image paths are relative to its folder")


class Entry:
    """One labelled image and where to point at it in an error."""

    __slots__ = ("path", "label", "split", "where")

    def __init__(self, path: Path, label: str, split: str | None, where: str):
        self.path, self.label, self.split, self.where = path, label, split, where


# -- listing --------------------------------------------------------------------------


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def list_folder(root: Path) -> tuple[list[Entry], str]:
    """Entries of an image folder and its layout (``classes`` or ``splits``)."""
    if not root.is_dir():
        raise DataError("image_folder needs a folder with one sub-folder per class", where=str(root))
    top = _subdirs(root)
    names = {p.name.lower() for p in top}
    split_layout = "train" in names and names <= set(SPLIT_NAMES)
    roots = [(SPLIT_NAMES[p.name.lower()], p) for p in top] if split_layout else [(None, root)]
    entries = []
    for split, folder in roots:
        class_dirs = _subdirs(folder)
        if not class_dirs:
            raise DataError("no class sub-folders", where=str(folder),
                            hint="image_folder expects ROOT/<class>/<image> or ROOT/train/<class>/<image>")
        for class_dir in class_dirs:
            images = _images_in(class_dir)
            if not images:
                raise DataError(f"class folder {class_dir.name!r} has no images ({', '.join(IMAGE_SUFFIXES)})",
                                where=str(class_dir), hint="add images or remove the empty folder")
            entries += [Entry(p, class_dir.name, split, str(p)) for p in images]
    return entries, "splits" if split_layout else "classes"


def read_csv_manifest(csv_path: Path) -> list[Entry]:
    """Rows ``path,label[,split]``; paths resolve against the CSV's folder."""
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            columns = {(c or "").strip() for c in reader.fieldnames or []}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read the CSV: {exc}", where=str(csv_path)) from None
    if not {"path", "label"} <= columns:
        raise DataError(f"the CSV needs columns path and label (found {sorted(columns)})", where=str(csv_path),
                        hint="first line: path,label[,split]")
    entries = []
    for lineno, row in enumerate(rows, 2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        where = f"{csv_path} row {lineno}"
        if not row.get("path") or not row.get("label"):
            raise DataError("empty path or label", where=where)
        split = None
        if row.get("split"):
            split = SPLIT_NAMES.get(row["split"].lower())
            if split is None:
                raise DataError(f"unknown split {row['split']!r}", where=where,
                                hint="use train, val or test (or leave it empty for the seeded split)")
        path = Path(row["path"]).expanduser()
        path = path if path.is_absolute() else csv_path.parent / path
        entries.append(Entry(path, row["label"], split, f"{where} ({row['path']})"))
    if not entries:
        raise DataError("the CSV has no rows", where=str(csv_path))
    return entries


# -- checking and building ----------------------------------------------------------------


def check_files(entries: list[Entry], skip_bad: bool, skipped: Counter, skipped_files: list[str]) -> list[Entry]:
    """Every file exists and PIL can read its structure; bad ones raise or are counted."""
    good = []
    for entry in entries:
        if not entry.path.is_file():
            reason, message = "missing", "image file not found"
        else:
            problem = check_image(entry.path)
            if problem is None:
                good.append(entry)
                continue
            reason, message = "unreadable", f"not a readable image: {problem}"
        if not skip_bad:
            raise DataError(message, where=entry.where, hint=BAD_DATA_HINT)
        skipped[reason] += 1
        skipped_files.append(f"{entry.where}: {reason}")
    return good


def resolve_classes(entries: list[Entry], options: ClassListOptions, where: str) -> list[str]:
    found = sorted({e.label for e in entries})
    if options.classes is None:
        if len(found) < 2:
            raise DataError(f"classification needs at least 2 classes, found {found}", where=where)
        return found
    allowed = set(options.classes)
    for entry in entries:
        if entry.label not in allowed:
            raise DataError(f"label {entry.label!r} is not in data.classes {options.classes}", where=entry.where,
                            hint="fix the label, or add it to data.classes")
    empty = [c for c in options.classes if c not in found]
    if empty:
        raise DataError(f"class(es) {', '.join(map(repr, empty))} of data.classes have no images", where=where,
                        hint="add images for them or remove them from data.classes")
    return list(options.classes)


def entries_bundle(entries: list[Entry], options: ClassListOptions, backbone: Backbone, where: str,
                   layout: str) -> DataBundle:
    """Check, index and bundle the entries of either format."""
    classes = resolve_classes(entries, options, where)  # before the checks: a wrong label fails fast
    skipped, skipped_files = Counter(), []
    good = check_files(entries, options.skip_bad, skipped, skipped_files)
    empty = [c for c in classes if not any(e.label == c for e in good)]
    if empty:
        raise DataError(f"class(es) {', '.join(map(repr, empty))} have no readable images", where=where,
                        hint="every image of the class was skipped as bad; see data.json")
    index = {c: i for i, c in enumerate(classes)}
    sources = {}
    for split in ("train", "val", "test"):
        chosen = [e for e in good if (e.split or "train") == split]
        if chosen:
            sources[split] = FileSource([e.path for e in chosen], np.array([index[e.label] for e in chosen]),
                                        [e.where for e in chosen])
    if "train" not in sources:
        raise DataError("no training images (every file is in val or test)", where=where)
    files = [file_line(e.path, e.label, e.split) for e in good]
    return build_bundle(sources, classes, options, backbone, where, files, skipped, skipped_files,
                        {"layout": layout})


def build_folder(options: FolderOptions, backbone: Backbone, ctx) -> DataBundle:
    entries, layout = list_folder(options.path)
    return entries_bundle(entries, options, backbone, f"image_folder {options.path}", layout)


def build_csv(options: CsvOptions, backbone: Backbone, ctx) -> DataBundle:
    entries = read_csv_manifest(options.path)
    return entries_bundle(entries, options, backbone, f"image_csv {options.path}", "csv")
