"""The cheap ``check`` of the image formats: ``ft validate`` and the start of ``ft run``.

``image_folder`` and ``image_csv``: the files are listed with the build's own
code (:mod:`.folders`: the folder walk, the CSV reader, the class list),
every listed file gets one ``stat`` (missing files are counted and the first
few named with their CSV lines), and only a small, evenly spread sample of
:data:`SAMPLE_SIZE` images is decoded. A bad image outside the sample is
found when the data is built (every file's structure; every image decoded
with ``skip_bad``). ``idx``: the files are read whole with the build's reader
(magic number, size, image and label counts, label range); gzip offers no
cheaper way to find a file cut short (Fashion-MNIST: about half a second).
With ``skip_bad = true`` missing and bad files are counted, as in the build.
"""

from __future__ import annotations

from collections import Counter

from ft.errors import DataError

from .folders import (ClassListOptions, CsvOptions, Entry, FolderOptions, decode_all, drop_missing, list_folder,
                      read_csv_manifest, require_images, resolve_classes)
from .idx import IdxOptions, load_idx

#: images decoded by a check
SAMPLE_SIZE = 8


def check_folder(options: FolderOptions, ctx) -> str:
    """``image_folder``'s check: a one-line description, or a DataError."""
    entries, _ = list_folder(options.path)
    return check_entries(entries, options, str(options.path))


def check_csv(options: CsvOptions, ctx) -> str:
    """``image_csv``'s check: a one-line description, or a DataError."""
    return check_entries(read_csv_manifest(options.path), options, str(options.path))


def sample(entries: list[Entry], size: int = SAMPLE_SIZE) -> list[Entry]:
    """At most ``size`` entries spread evenly over the list (deterministic)."""
    if len(entries) <= size:
        return list(entries)
    return [entries[i * len(entries) // size] for i in range(size)]


def check_entries(entries: list[Entry], options: ClassListOptions, where: str) -> str:
    """What both file formats check once their images are listed."""
    classes = resolve_classes(entries, options, where)
    skipped, skipped_files = Counter(), []
    present = drop_missing(entries, options.skip_bad, skipped, skipped_files, where)
    chosen = sample(present)
    decoded = {id(e) for e in decode_all(chosen, options.skip_bad, skipped, skipped_files)}
    usable = [e for e in present if id(e) in decoded or all(e is not c for c in chosen)]
    require_images(classes, usable, where)
    counts = Counter(e.split or "train" for e in usable)
    splits = " / ".join(f"{counts[s]:,} {s}" for s in ("train", "val", "test") if counts[s])
    parts = [f"{len(usable):,} images in {len(classes)} classes ({splits})"]
    parts.append(f"{len(decoded)} of {len(chosen)} sampled images decode")
    return "; ".join(parts + _skipped(skipped))


def check_idx(options: IdxOptions, ctx) -> str:
    """``idx``'s check: a one-line description, or a DataError."""
    data = load_idx(options)
    splits = " / ".join(f"{len(kept):,} {split}" for split, kept in data.kept.items())
    if not len(data.kept["train"]):
        raise DataError("no training items left", where=data.where,
                        hint="every label is outside data.names (skipped with data.skip_bad)")
    shape = "x".join(map(str, data.pairs["train"][0].shape[1:]))
    return "; ".join([f"{splits} images of {shape}, {len(data.classes)} classes"] + _skipped(data.skipped))


def _skipped(skipped: Counter) -> list[str]:
    if not skipped:
        return []
    return ["skip_bad: " + ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items())) + " skipped so far"]
