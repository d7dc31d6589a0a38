"""The cheap ``check`` of the audio formats: ``ft validate`` and the start of ``ft run``.

A check lists the clips with the build's own code (:mod:`.clips`: the folder
walk, the manifest reader, the split rules), looks at every listed file with
one ``stat`` (missing files are counted and the first few named with their
CSV lines), and opens only a small, evenly spread sample of
:data:`SAMPLE_SIZE` clips to read the header and decode them. A bad file
outside the sample is found when the data is built (headers of every file;
every clip is decoded there with ``skip_bad`` or the preloaded cache). With
``skip_bad = true`` missing and bad files are counted, as in the build.
"""

from __future__ import annotations

from collections import Counter

from ft.errors import DataError

from .audio import BAD_DATA_HINT, read_audio
from .clips import (Entry, drop_missing, list_folder, list_unlabeled, manifest_split_method, read_manifest,
                    require_classes, validate)
from .data import AudioDataOptions, FolderOptions, ManifestOptions

#: clips whose header is read and which are decoded by a check
SAMPLE_SIZE = 8


def check_folder(options: FolderOptions, ctx) -> str:
    """``audio_folder``'s check: a one-line description, or a DataError."""
    entries = list_folder(options.path, options.speaker_pattern)
    return check_entries(entries, options, "speaker" if options.speaker_pattern else "stratified", str(options.path))


def check_manifest(options: ManifestOptions, ctx) -> str:
    """``audio_manifest``'s check: a one-line description, or a DataError."""
    entries, columns = read_manifest(options.path)
    return check_entries(entries, options, manifest_split_method(entries, columns), str(options.path))


def sample(entries: list[Entry], size: int = SAMPLE_SIZE) -> list[Entry]:
    """At most ``size`` entries spread evenly over the list (deterministic)."""
    if len(entries) <= size:
        return list(entries)
    return [entries[i * len(entries) // size] for i in range(size)]


def check_sample(entries: list[Entry], options: AudioDataOptions, skipped: Counter, skipped_files: list) -> list[Entry]:
    """Header and full decode of ``entries``; returns the bad ones (counted
    with ``skip_bad``, else the first is a DataError naming it)."""
    good = validate(entries, options.min_seconds, options.skip_bad, skipped, skipped_files)
    bad = [e for e in entries if all(e is not g for g in good)]
    for entry in good:
        try:
            read_audio(entry.path, entry.where)
        except DataError as exc:
            if not options.skip_bad:
                raise DataError(exc.message, where=exc.where, hint=BAD_DATA_HINT) from None
            skipped["undecodable"] += 1
            skipped_files.append(f"{entry.where}: undecodable")
            bad.append(entry)
    return bad


def check_entries(entries: list[Entry], options: AudioDataOptions, split_method: str, where: str) -> str:
    """What both formats check once their clips are listed."""
    skipped, skipped_files = Counter(), []
    present = drop_missing(entries, options.skip_bad, skipped, skipped_files, where)
    chosen = sample(present)
    bad = {id(e) for e in check_sample(chosen, options, skipped, skipped_files)}
    usable = [e for e in present if id(e) not in bad]
    classes = require_classes(entries, usable, where)
    parts = [f"{len(usable):,} clips in {len(classes)} classes"]
    if split_method == "column":
        counts = Counter(e.split for e in usable)
        if not counts["train"]:
            raise DataError("no clip is in the train split", where=where,
                            hint="the split column needs train rows (train, val or test on every line)")
        parts[0] += " (" + " / ".join(f"{counts[s]:,} {s}" for s in ("train", "val", "test") if counts[s]) + ")"
    elif split_method == "speaker":
        parts.append(f"{len({e.speaker for e in usable}):,} speakers, split by speaker when built")
    else:
        parts.append("split stratified by class when built")
    if options.unlabeled is not None:
        unlabeled = drop_missing(list_unlabeled(options.unlabeled), options.skip_bad, skipped, skipped_files,
                                 str(options.unlabeled))
        parts.append(f"{len(unlabeled):,} unlabeled clips")
    parts.append(f"{len(chosen) - len(bad)} of {len(chosen)} sampled clips decode")
    if skipped:
        parts.append("skip_bad: " + ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
                     + " skipped so far")
    return "; ".join(parts)
