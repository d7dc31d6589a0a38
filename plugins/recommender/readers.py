"""Reading interaction files: generic CSV, GroupLens ``u.data``, RecBole atomic files.

Every reader returns :class:`Interactions`: one row per (user, item, rating,
timestamp) with the line it came from, so later checks can name the file,
line and column of a problem. Everything is checked while reading, before
any training: a folder where a file is expected, an empty file, a header
without data rows, unknown or missing columns, bytes that are not UTF-8,
an unclosed quote, short rows, empty IDs, non-numeric ratings or
timestamps, and duplicate (user, item, timestamp) rows all raise
:class:`ft.DataError`.

Every message names ``file: line N`` (a 1-based file line; a header is
line 1).
"""

from __future__ import annotations

import csv
import difflib
import importlib.util
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from ft.errors import DataError, FtError, did_you_mean

#: RecBole atomic-file field types (``name:type`` headers)
RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")
# bytes not valid UTF-8, kept by the "surrogateescape" handler as U+DC80..U+DCFF
_UNDECODABLE = re.compile("[\udc80-\udcff]")


@dataclass
class Interactions:
    """Interactions read from one file, plus side features where the format has them.

    ``times`` is None when the file has no timestamps (then file order stands
    in for time where a split needs an order, and ``by_time``/``by_user``
    refuse). ``item_features``/``user_features`` map a column name to
    ``{id: [tokens]}``; ``catalogue`` lists item IDs known from an item file
    even if nobody interacted with them.
    """

    users: np.ndarray  # str IDs (object array)
    items: np.ndarray
    ratings: np.ndarray  # float64
    times: np.ndarray | None  # float64
    lines: np.ndarray  # line number of each row in ``source``
    source: str
    item_features: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    user_features: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    catalogue: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.users)

    def order(self) -> np.ndarray:
        """Row indices sorted by (user, time, file order): each user's history in time order."""
        time = self.times if self.times is not None else np.arange(len(self), dtype=np.float64)
        return np.lexsort((self.lines, time, self.users))


def at(path: Path | str, line: int) -> str:
    """``file: line N`` (1-based file line; a header is line 1)."""
    return f"{path}: line {line}"


def _open(path: Path, expected: str, hint: str) -> TextIO:
    """A data file as text; a folder or a missing file is a :class:`DataError`.
    Undecodable bytes come through as U+DC80..U+DCFF (see :func:`_decoded`)."""
    if path.is_dir():
        raise DataError(f"this is a folder; expected {expected}", where=str(path), hint=hint)
    if not path.is_file():
        raise DataError("no such file", where=str(path))
    # utf-8-sig: UTF-8 that drops the byte-order mark some editors write first, if any
    return path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")


def _decoded(path: Path, line: int, texts) -> None:
    """Raise naming the line if one of ``texts`` holds bytes that were not valid UTF-8."""
    for text in texts:
        found = _UNDECODABLE.search(text)
        if found:
            raise DataError(f"byte 0x{ord(found.group()) - 0xDC00:02x} is not valid UTF-8; the file is expected "
                            f"to be UTF-8 text", where=at(path, line), hint="save the file as UTF-8")


def _column_hint(name: str, columns: list[str], option: str) -> str:
    close = difflib.get_close_matches(name, columns, n=1)
    if close:
        return f"did you mean {close[0]!r}? Set data.{option} = \"{close[0]}\""
    return f"set data.{option} to one of the columns: {', '.join(columns)}"


def _number(value: str, path: Path, line: int, column: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise DataError(f"column {column!r}: expected a number, found {value!r}", where=at(path, line),
                        hint="fix or remove the row")
    return number


class _Rows:
    """Interactions as they are read: IDs checked, numbers parsed, lines kept.

    ``columns`` names the user, item, rating and timestamp columns (None:
    no timestamps) for messages; ``max_rows`` stops reading early (a sample).
    """

    def __init__(self, path: Path, columns: tuple[str, str, str, str | None], max_rows: int | None = None):
        self.path, self.columns, self.max_rows = path, columns, max_rows
        self.users: list[str] = []
        self.items: list[str] = []
        self.ratings: list[float] = []
        self.times: list[float] | None = [] if columns[3] is not None else None
        self.lines: list[int] = []

    @property
    def full(self) -> bool:
        return self.max_rows is not None and len(self.users) >= self.max_rows

    def add(self, line: int, user: str, item: str, rating: str, time: str | None = None) -> None:
        for value, column in ((user, self.columns[0]), (item, self.columns[1])):
            if not value.strip():
                raise DataError(f"column {column!r}: empty ID", where=at(self.path, line),
                                hint="fix or remove the row")
        self.users.append(user)
        self.items.append(item)
        self.ratings.append(_number(rating, self.path, line, self.columns[2]))
        if self.times is not None:
            self.times.append(_number(time, self.path, line, self.columns[3]))
        self.lines.append(line)

    def finish(self) -> Interactions:
        if not self.users:
            raise DataError("no interactions (the file has no data rows)", where=str(self.path),
                            hint="check that data.path is the interaction file")
        out = Interactions(np.array(self.users, dtype=object), np.array(self.items, dtype=object),
                           np.array(self.ratings, dtype=np.float64),
                           None if self.times is None else np.array(self.times, dtype=np.float64),
                           np.array(self.lines, dtype=np.int64), str(self.path))
        check_duplicates(out)
        return out


def check_duplicates(data: Interactions) -> None:
    """Two rows with the same (user, item, timestamp) are an error naming both lines."""
    time = data.times if data.times is not None else np.zeros(len(data))
    seen: dict[tuple, int] = {}
    for user, item, t, line in zip(data.users.tolist(), data.items.tolist(), time.tolist(), data.lines.tolist()):
        key = (user, item, t)
        if key in seen:
            cols = "user, item, timestamp" if data.times is not None else "user, item (no timestamp column)"
            raise DataError(f"duplicate interaction: the same ({cols}) = ({user!r}, {item!r}"
                            f"{', ' + repr(t) if data.times is not None else ''}) as line {seen[key]}",
                            where=at(data.source, line), hint="remove the repeated row")
        seen[key] = line


# -- generic CSV -----------------------------------------------------------------


def read_csv(path: Path, *, user: str, item: str, rating: str, timestamp: str | None,
             delimiter: str = ",", ignore: tuple[str, ...] = (), max_rows: int | None = None) -> Interactions:
    """A CSV with a header naming the user, item, rating and (optional)
    timestamp columns. Columns not named (nor listed in ``ignore``) are an
    error: a misspelt column name must not be read as "no timestamps".
    Quoted fields may hold the delimiter but not a line break, so an
    unclosed quote is an error naming its line instead of rows merged."""
    with _open(path, "a CSV file", "point data.path at the interaction CSV") as fh:
        reader = csv.reader(fh, delimiter=delimiter, strict=True)
        header = _csv_record(reader, path)
        if header is None:
            raise DataError("the file is empty (expected a header row)", where=str(path),
                            hint=f"write a header naming the columns ({user},{item},{rating}"
                                 f"{',' + timestamp if timestamp else ''}), then one interaction per line")
        _decoded(path, 1, header)
        header = [h.strip() for h in header]
        wanted = {"user_column": user, "item_column": item, "rating_column": rating}
        if timestamp is not None:
            wanted["timestamp_column"] = timestamp
        for option, name in wanted.items():
            if name not in header:
                raise DataError(f"column {name!r} (data.{option}) is not in the header {header}",
                                where=at(path, 1), hint=_column_hint(name, header, option))
        for name in header:
            if name not in wanted.values() and name not in ignore:
                raise DataError(f"column {name!r}: unknown column", where=at(path, 1),
                                hint="name it in data.*_column, or list it in data.ignore_columns")
        pos = {name: header.index(name) for name in wanted.values()}
        rows = _Rows(path, (user, item, rating, timestamp), max_rows)
        while not rows.full:
            line = reader.line_num + 1
            row = _csv_record(reader, path)
            if row is None:
                break
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            _decoded(path, line, row)
            if len(row) != len(header):
                raise DataError(f"expected {len(header)} fields ({', '.join(header)}), found {len(row)}",
                                where=at(path, line), hint="fix the row (quote a field that holds the delimiter)")
            rows.add(line, row[pos[user]].strip(), row[pos[item]].strip(), row[pos[rating]],
                     row[pos[timestamp]] if timestamp is not None else None)
    return rows.finish()


def _csv_record(reader, path: Path) -> list[str] | None:
    """The next record (None at the end); a quote left open past the end of
    its line, or followed by other text, is an error naming its line."""
    line = reader.line_num + 1
    try:
        row = next(reader)
    except StopIteration:
        return None
    except csv.Error as exc:
        runs_on = reader.line_num > line or "end of data" in str(exc)
        how = "not closed on this line" if runs_on else "followed by other text"
        raise DataError(f"a quoted field opens here and is {how} ({exc})", where=at(path, line),
                        hint="close the quote, or remove it") from None
    if reader.line_num > line:  # a line break inside quotes: never part of an interaction
        raise DataError(f"a quoted field opens here and is not closed on this line (it runs to line "
                        f"{reader.line_num})", where=at(path, line), hint="close the quote, or remove it")
    return row


# -- GroupLens -------------------------------------------------------------------


def read_grouplens(path: Path, max_rows: int | None = None) -> Interactions:
    """GroupLens ratings: ``u.data`` (tab-separated ``user item rating
    timestamp``, no header); ``ratings.dat`` (``::``-separated) also works.
    Read as UTF-8: rating files hold only numbers (MovieLens's latin-1 is in
    its title files), so any other byte is damage."""
    columns = ("user", "item", "rating", "timestamp")
    rows = _Rows(path, columns, max_rows)
    hint = "point data.path at u.data (or ratings.dat)" + (" in it" if (path / "u.data").is_file() else "")
    with _open(path, "a GroupLens ratings file (u.data)", hint) as fh:
        for line, text in enumerate(fh, 1):
            if rows.full:
                break
            text = text.rstrip("\r\n")
            if not text.strip():
                continue
            _decoded(path, line, [text])
            row = text.split("::") if "::" in text else text.split("\t")
            if len(row) != 4:
                raise DataError(f"expected 4 tab-separated fields ({', '.join(columns)}), found {len(row)}: "
                                f"{text[:60]!r}", where=at(path, line),
                                hint="u.data has no header; for a CSV with one, use data.format = "
                                     "\"interactions_csv\"")
            rows.add(line, row[0].strip(), row[1].strip(), row[2], row[3])
    return rows.finish()


# -- RecBole atomic files --------------------------------------------------------


def recbole_folder(source: str) -> Path:
    """``recbole:NAME`` -> the folder of that example dataset in the installed
    recbole package (read in place: MovieLens may not be redistributed)."""
    prefix, _, name = source.partition(":")
    if prefix != "recbole" or not name:
        raise FtError(f"unknown data source {source!r}", where="data.source",
                      hint="write source = \"recbole:ml-100k\", or give data.path")
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise FtError("the recbole package is not installed (its example datasets are the default data)",
                      where="data.source", hint="pip install --no-deps recbole==1.2.1, or give data.path")
    folder = Path(list(spec.submodule_search_locations)[0]) / "dataset_example" / name
    if not (folder / f"{name}.inter").exists():
        raise FtError(f"recbole has no example dataset {name!r} (looked for {folder}/{name}.inter)",
                      where="data.source")
    return folder


def _atomic_header(path: Path, header: list[str]) -> dict[str, tuple[int, str]]:
    fields = {}
    for pos, raw in enumerate(header):
        name, sep, kind = raw.strip().partition(":")
        if not sep:
            raise DataError(f"column {raw!r}: RecBole headers are name:type", where=at(path, 1),
                            hint=f"types: {', '.join(RECBOLE_TYPES)}")
        if kind not in RECBOLE_TYPES:
            raise DataError(f"column {name!r}: unknown field type {kind!r}", where=at(path, 1),
                            hint=did_you_mean(kind, RECBOLE_TYPES) or f"types: {', '.join(RECBOLE_TYPES)}")
        fields[name] = (pos, kind)
    return fields


def _atomic_rows(path: Path):
    """Yield the header's fields, then ``(line, values)`` per data row."""
    hint = ("point data.path at the .inter file, or the folder holding it" if path.suffix == ".inter" else
            f"RecBole's {path.suffix} file must be a file")
    with _open(path, f"a RecBole {path.suffix or '.inter'} file", hint) as fh:
        first = fh.readline()
        if not first.strip():
            raise DataError("the file is empty (expected a tab-separated name:type header)", where=str(path))
        _decoded(path, 1, [first])
        header = first.rstrip("\r\n").split("\t")
        yield _atomic_header(path, header)
        for line, text in enumerate(fh, 2):
            if not text.strip():
                continue
            _decoded(path, line, [text])
            row = text.rstrip("\r\n").split("\t")
            if len(row) != len(header):
                raise DataError(f"expected {len(header)} tab-separated fields, found {len(row)}",
                                where=at(path, line), hint="fix the row (RecBole files are tab-separated)")
            yield line, row


def _need(path: Path, fields: dict, name: str, option: str) -> int:
    if name not in fields:
        raise DataError(f"column {name!r} (data.{option}) is not in the header ({', '.join(fields)})",
                        where=at(path, 1), hint=_column_hint(name, list(fields), option))
    return fields[name][0]


def read_recbole(inter: Path, *, user: str, item: str, rating: str, timestamp: str | None,
                 item_features: list[str], user_features: list[str],
                 bins: dict[str, float], max_rows: int | None = None) -> Interactions:
    """``NAME.inter`` (+ ``NAME.item`` / ``NAME.user`` beside it for side features)."""
    rows = _atomic_rows(inter)
    fields = next(rows)
    iu, ii, ir = (_need(inter, fields, n, o) for n, o in ((user, "user_column"), (item, "item_column"),
                                                            (rating, "rating_column")))
    it = _need(inter, fields, timestamp, "timestamp_column") if timestamp is not None else None
    out = _Rows(inter, (user, item, rating, timestamp), max_rows)
    for line, row in rows:
        out.add(line, row[iu], row[ii], row[ir], row[it] if it is not None else None)
        if out.full:
            rows.close()
            break
    data = out.finish()
    stem = inter.with_suffix("")
    if item_features or (stem.with_suffix(".item")).exists():
        data.item_features, data.catalogue = _read_side(stem.with_suffix(".item"), item, item_features, bins,
                                                        "item_features")
    if user_features:
        data.user_features, _ = _read_side(stem.with_suffix(".user"), user, user_features, bins, "user_features")
    return data


def _bin(token: str, width: float) -> str:
    """``"1995"`` with width 10 -> ``"1990"``; a non-number (``"unknown"``) stays its own token."""
    try:
        value = float(token)
    except ValueError:
        return token
    return str(int(value // width * width)) if math.isfinite(value) else token


def _read_side(path: Path, key: str, columns: list[str], bins: dict[str, float],
               option: str) -> tuple[dict[str, dict[str, list[str]]], list[str]]:
    """Side features of one atomic file: ``{column: {id: [tokens]}}`` and the IDs it lists."""
    if not path.exists():
        if columns:
            raise DataError(f"data.{option} = {columns} but there is no {path.name} beside the .inter file",
                            where=str(path.parent), hint=f"add {path.name}, or leave data.{option} empty")
        return {}, []
    rows = _atomic_rows(path)
    fields = next(rows)
    ik = _need(path, fields, key, "user_column" if option == "user_features" else "item_column")
    wanted = {c: _need(path, fields, c, option) for c in columns}
    out: dict[str, dict[str, list[str]]] = {c: {} for c in columns}
    ids: list[str] = []
    for line, row in rows:
        ids.append(row[ik])
        for c, pos in wanted.items():
            value = row[pos].strip()
            tokens = value.split() if fields[c][1].endswith("_seq") else ([value] if value else [])
            if c in bins:
                tokens = [_bin(t, bins[c]) for t in tokens]
            out[c][row[ik]] = tokens
    return out, ids
