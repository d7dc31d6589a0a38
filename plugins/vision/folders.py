"""Dataset formats ``image_folder`` and ``image_csv``: labelled image files.

``image_folder``: ``ROOT/<class>/<image>`` (images may sit in nested folders
below their class folder), or ``ROOT/train/<class>/...`` with optional
``ROOT/val/...`` (also ``valid``, ``validation``) and ``ROOT/test/...``.
``image_csv``: a CSV with columns ``path,label`` and optionally ``split``
(train / val / test); paths are relative to the CSV's folder.

Every file is checked before training: missing files are one error that
counts them and names the first few (with their CSV lines; a CSV's header is
line 1), then PIL's ``verify`` looks at each file's header and structure. That
does not decode, so a truncated JPEG passes it and fails when its pixels
load; with ``skip_bad = true`` every image is therefore also decoded once when
the data is built (a few threads), and missing, unreadable and undecodable
files are skipped and counted in data.json. Training then reads a fixed list
of good files, which keeps it deterministic and resumable. A class folder
without images, and a CSV label outside ``classes``, are errors too.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from pydantic import Field, field_validator

from ft.contracts import Backbone, DataBundle
from ft.csv_table import drop_missing as drop_missing_files
from ft.csv_table import read_csv as read_table
from ft.errors import DataError
from ft.specs import ExistingPath

from .data import BAD_DATA_HINT, FileSource, VisionDataOptions, build_bundle, file_line
from .transforms import check_image, load_rgb

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "dev": "val", "test": "test", "eval": "test"}
CSV_COLUMNS = "path,label[,split]"


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
    """One labelled image; ``where`` names it in errors (the file, or
    ``labels.csv: line 5 (img/a.png)``), ``ref`` is the part after the CSV's
    name (``line 5 (img/a.png)``; empty for a listed folder)."""

    __slots__ = ("path", "label", "split", "where", "ref")

    def __init__(self, path: Path, label: str, split: str | None, where: str, ref: str = ""):
        self.path, self.label, self.split, self.where, self.ref = path, label, split, where, ref


# -- listing --------------------------------------------------------------------------


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def list_folder(root: Path) -> tuple[list[Entry], str]:
    """Entries of an image folder and its layout (``classes`` or ``splits``)."""
    if not root.is_dir():
        if root.is_file():
            raise DataError("image_folder needs a folder with one sub-folder per class, found a file",
                            where=str(root), hint='for a CSV of paths and labels set data.format = "image_csv"')
        raise DataError("folder not found", where=str(root),
                        hint="check data.path (a relative path starts at the recipe's folder)")
    top = _subdirs(root)
    names = {p.name.lower() for p in top}
    split_layout = "train" in names and names <= set(SPLIT_NAMES)
    roots = [(SPLIT_NAMES[p.name.lower()], p) for p in top] if split_layout else [(None, root)]
    entries = []
    for split, folder in roots:
        class_dirs = _subdirs(folder)
        if not class_dirs:
            loose = [f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES]
            hint = "image_folder expects ROOT/<class>/<image> or ROOT/train/<class>/<image>"
            if loose:
                hint = f"move its {len(loose)} images into one sub-folder per class: ROOT/<class>/<image>"
            raise DataError("no class sub-folders", where=str(folder), hint=hint)
        for class_dir in class_dirs:
            images = _images_in(class_dir)
            if not images:
                raise DataError(f"class folder {class_dir.name!r} has no images ({', '.join(IMAGE_SUFFIXES)})",
                                where=str(class_dir), hint="add images or remove the empty folder")
            entries += [Entry(p, class_dir.name, split, str(p)) for p in images]
    return entries, "splits" if split_layout else "classes"


def read_csv(csv_path: Path, columns: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The manifest's header and ``(line, row)`` pairs (:func:`ft.csv_table.read_csv`)."""
    return read_table(csv_path, columns, item="image",
                      folder_hint='for ROOT/<class>/<image> folders set data.format = "image_folder"')


def read_csv_manifest(csv_path: Path) -> list[Entry]:
    """Rows ``path,label[,split]``; paths resolve against the CSV's folder."""
    header, rows = read_csv(csv_path, CSV_COLUMNS)
    columns = set(header)
    if not {"path", "label"} <= columns:
        case = {c.lower() for c in columns} >= {"path", "label"}
        raise DataError(f"the CSV needs columns path and label (found {sorted(columns)})",
                        where=f"{csv_path}: line 1",
                        hint=f"first line: {CSV_COLUMNS}" + (" (column names are lower case)" if case else ""))
    if not rows:
        raise DataError("the CSV has a header line but no rows", where=str(csv_path),
                        hint="add one line per image below the header")
    entries = []
    for line, row in rows:
        where = f"{csv_path}: line {line}"
        if not row.get("path") or not row.get("label"):
            raise DataError("empty path or label", where=where, hint="every line needs a path and a label")
        split = None
        if row.get("split"):
            split = SPLIT_NAMES.get(row["split"].lower())
            if split is None:
                raise DataError(f"unknown split {row['split']!r}", where=where,
                                hint="use train, val or test (or leave it empty for the seeded split)")
        path = Path(row["path"]).expanduser()
        path = path if path.is_absolute() else csv_path.parent / path
        ref = f"line {line} ({row['path']})"
        entries.append(Entry(path, row["label"], split, f"{csv_path}: {ref}", ref))
    return entries


# -- checking and building ----------------------------------------------------------------


def drop_missing(entries: list[Entry], skip_bad: bool, skipped: Counter, skipped_files: list[str],
                 where: str) -> list[Entry]:
    """The entries whose file exists (:func:`ft.csv_table.drop_missing`)."""
    return drop_missing_files(entries, skip_bad, skipped, skipped_files, where, kind="image")


def decode_all(entries: list[Entry], skip_bad: bool, skipped: Counter, skipped_files: list[str]) -> list[Entry]:
    """Decode every image with :func:`load_rgb` (the loader's own code, a few
    threads: PIL decodes without the GIL); the ones that fail are counted as
    ``undecodable`` with ``skip_bad`` (else the first is raised). Returns
    the good entries."""
    def decode(entry: Entry):
        try:
            load_rgb(entry.path, entry.where)
        except DataError as exc:
            return exc
        return None

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        errors = list(pool.map(decode, entries))
    good = []
    for entry, error in zip(entries, errors):
        if error is None:
            good.append(entry)
        elif not skip_bad:
            raise error
        else:
            skipped["undecodable"] += 1
            skipped_files.append(f"{entry.where}: undecodable")
    return good


def check_files(entries: list[Entry], skip_bad: bool, skipped: Counter, skipped_files: list[str],
                where: str = "") -> list[Entry]:
    """Every file exists (see :func:`drop_missing`) and PIL can read its
    structure; with ``skip_bad`` every image is also decoded (see
    :func:`decode_all`). Bad ones raise or are counted; returns the good ones."""
    readable = []
    for entry in drop_missing(entries, skip_bad, skipped, skipped_files, where):
        problem = check_image(entry.path)
        if problem is None:
            readable.append(entry)
            continue
        if not skip_bad:
            raise DataError(f"not a readable image: {problem}", where=entry.where, hint=BAD_DATA_HINT)
        skipped["unreadable"] += 1
        skipped_files.append(f"{entry.where}: unreadable")
    if not skip_bad:
        return readable
    t0 = time.perf_counter()
    good = decode_all(readable, skip_bad, skipped, skipped_files)
    print(f"vision: decoded {len(readable):,} images to find bad ones (data.skip_bad) in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    return good


def require_images(classes: list[str], good: list[Entry], where: str) -> None:
    """Each class keeps a good image, and some image is in the train split."""
    empty = [c for c in classes if not any(e.label == c for e in good)]
    if empty:
        raise DataError(f"class(es) {', '.join(map(repr, empty))} have no readable images", where=where,
                        hint="every image of the class was skipped as bad (data.skip_bad; listed in data.json)")
    if not any((e.split or "train") == "train" for e in good):
        raise DataError("no training images (every file is in val or test)", where=where,
                        hint="put some images in the train split")


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


def entries_bundle(entries: list[Entry], options: ClassListOptions, backbone: Backbone, source: str,
                   layout: str, where: str) -> DataBundle:
    """Check, index and bundle the entries of either format; ``source``
    names the data in data.json, ``where`` (the folder or CSV) in errors."""
    classes = resolve_classes(entries, options, where)  # before the checks: a wrong label fails fast
    skipped, skipped_files = Counter(), []
    good = check_files(entries, options.skip_bad, skipped, skipped_files, where)
    require_images(classes, good, where)
    index = {c: i for i, c in enumerate(classes)}
    sources = {}
    for split in ("train", "val", "test"):
        chosen = [e for e in good if (e.split or "train") == split]
        if chosen:
            sources[split] = FileSource([e.path for e in chosen], np.array([index[e.label] for e in chosen]),
                                        [e.where for e in chosen], decoded_at_build=options.skip_bad)
    files = [file_line(e.path, e.label, e.split) for e in good]
    return build_bundle(sources, classes, options, backbone, source, files, skipped, skipped_files,
                        {"layout": layout, "decoded_at_build": options.skip_bad})


def build_folder(options: FolderOptions, backbone: Backbone, ctx) -> DataBundle:
    entries, layout = list_folder(options.path)
    return entries_bundle(entries, options, backbone, f"image_folder {options.path}", layout, str(options.path))


def build_csv(options: CsvOptions, backbone: Backbone, ctx) -> DataBundle:
    entries = read_csv_manifest(options.path)
    return entries_bundle(entries, options, backbone, f"image_csv {options.path}", "csv", str(options.path))
