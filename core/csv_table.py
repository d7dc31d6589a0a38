"""A CSV file read for people: every row with the file line it starts on,
and every fault named by file and line.

Dataset formats whose inputs are a small CSV manifest (paths and labels)
read it through :func:`read_csv`, so "line N" means the same in every
domain: the 1-based line of the file, the header being line 1; and they
check the files it names with :func:`drop_missing`.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from .errors import DataError

#: missing files named in the error (the rest are counted)
SHOWN_MISSING = 5


def read_csv(csv_path: Path, columns: str, *, item: str = "row",
             folder_hint: str | None = None) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and ``(line, row)`` pairs of a UTF-8 CSV file (cells
    stripped); ``line`` is the file line the row starts on (a quoted field
    may span lines). An empty file, a folder, bad encoding, broken quoting
    (an unclosed quote, text after a closing quote) or more fields than the
    header names is a :class:`DataError` naming the file and line.
    ``columns`` is the expected header and ``item`` what a row is ("clip"),
    both for the hints; ``folder_hint`` is said when a folder is given."""
    if csv_path.is_dir():
        raise DataError("expected a CSV file, found a folder", where=str(csv_path), hint=folder_hint)
    try:
        raw = csv_path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read the CSV: {exc.strerror or exc}", where=str(csv_path)) from None
    body = raw[len(codecs.BOM_UTF8):] if raw.startswith(codecs.BOM_UTF8) else raw
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body[:exc.start].count(b"\n") + 1
        raise DataError(f"the CSV is not UTF-8 text (byte 0x{body[exc.start]:02x})", where=f"{csv_path}: line {line}",
                        hint="save it as UTF-8 (\"CSV UTF-8\" in spreadsheet programs)") from None
    if not text.strip():
        raise DataError("the CSV is empty", where=str(csv_path),
                        hint=f"first line: {columns}, then one line per {item}")
    lines = io.StringIO(text, newline="").readlines()  # split as the csv module splits them

    def first_line(after: int) -> int:  # the line a row starts on: the csv module skips blank lines
        line = after + 1
        while line <= len(lines) and not lines[line - 1].strip():
            line += 1
        return line

    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    rows, end = [], 0
    try:
        header = [(c or "").strip() for c in reader.fieldnames or []]
        end = reader.line_num
        for row in reader:
            start, end = first_line(end), reader.line_num
            extra = [v for v in row.pop(None, None) or [] if v and v.strip()]
            if extra:
                raise DataError(f"{len(header) + len(extra)} or more fields, but the header names {len(header)}",
                                where=f"{csv_path}: line {start}", hint="quote fields that hold commas")
            rows.append((start, {(k or "").strip(): (v or "").strip() for k, v in row.items()}))
    except csv.Error as exc:
        unclosed = " (a quote opened on this line is never closed)" if "end of data" in str(exc) else ""
        raise DataError(f"not a valid CSV: {exc}{unclosed}", where=f"{csv_path}: line {first_line(end)}",
                        hint='a field with a comma or a quote goes in double quotes, with "" for a quote inside'
                        ) from None
    return header, rows


def drop_missing(entries: Sequence[Any], skip_bad: bool, skipped: Counter, skipped_files: list[str], where: str,
                 kind: str = "") -> list[Any]:
    """The entries whose file exists (one ``stat`` each). An entry has
    ``path``, ``where`` (its place, e.g. ``FILE: line N``) and ``ref`` (how
    the error shows it, or None for the path).

    Without ``skip_bad`` any missing file is one DataError at ``where`` (the
    CSV or the folder) that counts them and names the first few with their
    lines; with it they are counted as ``missing``. ``kind`` names the files
    ("audio", "image").
    """
    missing = [e for e in entries if not e.path.is_file()]
    if not missing:
        return list(entries)
    if not skip_bad:
        shown = ", ".join(e.ref or str(e.path) for e in missing[:SHOWN_MISSING])
        more = f" and {len(missing) - SHOWN_MISSING} more" if len(missing) > SHOWN_MISSING else ""
        files = f"{kind} files" if kind else "files"
        raise DataError(f"{len(missing)} of {len(entries)} {files} not found: {shown}{more}", where=where,
                        hint="paths in a CSV are relative to its folder; fix the paths or the files, or set "
                             "data.skip_bad = true to skip missing files (they are counted in data.json)")
    skipped["missing"] += len(missing)
    skipped_files += [f"{e.where}: missing" for e in missing]
    gone = {id(e) for e in missing}
    return [e for e in entries if id(e) not in gone]


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """A small CSV (a manifest, a sample dataset) with ``header`` first."""
    import csv

    with Path(path).open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return Path(path)
