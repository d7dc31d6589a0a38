"""Reading interaction files: generic CSV, GroupLens ``u.data``, RecBole atomic files.

Every reader returns :class:`Interactions`: one row per (user, item, rating,
timestamp) with the line it came from, so later checks can name the file,
row and column of a problem. Everything is checked while reading, before any
training: unknown or missing columns, non-numeric ratings or timestamps, short
rows, and duplicate (user, item, timestamp) rows all raise
:class:`ft.DataError`.

Row numbers are file line numbers (1-based; a header is line 1).
"""

from __future__ import annotations

import csv
import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ft.errors import DataError, FtError, did_you_mean

#: RecBole atomic-file field types (``name:type`` headers)
RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")


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


def _number(value: str, path: Path, line: int, column: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise DataError(f"row {line}, column {column!r}: expected a number, found {value!r}", where=str(path),
                        hint="fix or remove the row")
    return number


def _finish(path: Path, users: list, items: list, ratings: list, times: list | None, lines: list) -> Interactions:
    if not users:
        raise DataError("no interactions (the file has no data rows)", where=str(path))
    out = Interactions(np.array(users, dtype=object), np.array(items, dtype=object),
                       np.array(ratings, dtype=np.float64),
                       None if times is None else np.array(times, dtype=np.float64),
                       np.array(lines, dtype=np.int64), str(path))
    check_duplicates(out)
    return out


def check_duplicates(data: Interactions) -> None:
    """Two rows with the same (user, item, timestamp) are an error naming both rows."""
    time = data.times if data.times is not None else np.zeros(len(data))
    seen: dict[tuple, int] = {}
    for user, item, t, line in zip(data.users.tolist(), data.items.tolist(), time.tolist(), data.lines.tolist()):
        key = (user, item, t)
        if key in seen:
            cols = "user, item, timestamp" if data.times is not None else "user, item (no timestamp column)"
            raise DataError(f"rows {seen[key]} and {line}: duplicate interaction in columns ({cols}) = "
                            f"({user!r}, {item!r}{', ' + repr(t) if data.times is not None else ''})",
                            where=data.source, hint="remove the repeated row")
        seen[key] = line


# -- generic CSV -----------------------------------------------------------------


def read_csv(path: Path, *, user: str, item: str, rating: str, timestamp: str | None,
             delimiter: str = ",", ignore: tuple[str, ...] = ()) -> Interactions:
    """A CSV with a header naming the user, item, rating and (optional)
    timestamp columns. Columns not named (nor listed in ``ignore``) are an
    error: a misspelt column name must not be read as "no timestamps"."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise DataError("the file is empty (expected a header row)", where=str(path))
        header = [h.strip() for h in header]
        wanted = {"user_column": user, "item_column": item, "rating_column": rating}
        if timestamp is not None:
            wanted["timestamp_column"] = timestamp
        for option, name in wanted.items():
            if name not in header:
                raise DataError(f"row 1: column {name!r} (data.{option}) is not in the header {header}",
                                where=str(path), hint=did_you_mean(name, header) or f"set data.{option}")
        for name in header:
            if name not in wanted.values() and name not in ignore:
                raise DataError(f"row 1, column {name!r}: unknown column", where=str(path),
                                hint="name it in data.*_column, or list it in data.ignore_columns")
        pos = {name: header.index(name) for name in wanted.values()}
        users, items, ratings, times, lines = [], [], [], ([] if timestamp else None), []
        for line, row in enumerate(reader, 2):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                raise DataError(f"row {line}: expected {len(header)} fields ({', '.join(header)}), found {len(row)}",
                                where=str(path))
            users.append(row[pos[user]].strip())
            items.append(row[pos[item]].strip())
            ratings.append(_number(row[pos[rating]], path, line, rating))
            if times is not None:
                times.append(_number(row[pos[timestamp]], path, line, timestamp))
            lines.append(line)
    return _finish(path, users, items, ratings, times, lines)


# -- GroupLens -------------------------------------------------------------------


def read_grouplens(path: Path) -> Interactions:
    """GroupLens ratings: ``u.data`` (tab-separated ``user item rating
    timestamp``, no header); ``ratings.dat`` (``::``-separated) also works."""
    columns = ("user", "item", "rating", "timestamp")
    users, items, ratings, times, lines = [], [], [], [], []
    with path.open(encoding="latin-1") as fh:
        for line, text in enumerate(fh, 1):
            text = text.rstrip("\r\n")
            if not text.strip():
                continue
            row = text.split("::") if "::" in text else text.split("\t")
            if len(row) != 4:
                raise DataError(f"row {line}: expected 4 tab-separated fields ({', '.join(columns)}), "
                                f"found {len(row)}: {text[:60]!r}", where=str(path))
            users.append(row[0].strip())
            items.append(row[1].strip())
            ratings.append(_number(row[2], path, line, "rating"))
            times.append(_number(row[3], path, line, "timestamp"))
            lines.append(line)
    return _finish(path, users, items, ratings, times, lines)


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
            raise DataError(f"row 1, column {raw!r}: RecBole headers are name:type", where=str(path),
                            hint=f"types: {', '.join(RECBOLE_TYPES)}")
        if kind not in RECBOLE_TYPES:
            raise DataError(f"row 1, column {name!r}: unknown field type {kind!r}", where=str(path),
                            hint=did_you_mean(kind, RECBOLE_TYPES) or f"types: {', '.join(RECBOLE_TYPES)}")
        fields[name] = (pos, kind)
    return fields


def _atomic_rows(path: Path):
    with path.open(encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
        fields = _atomic_header(path, header)
        rows = ((line, text.rstrip("\r\n").split("\t")) for line, text in enumerate(fh, 2) if text.strip())
        yield fields
        for line, row in rows:
            if len(row) != len(header):
                raise DataError(f"row {line}: expected {len(header)} tab-separated fields, found {len(row)}",
                                where=str(path))
            yield line, row


def _need(path: Path, fields: dict, name: str, option: str) -> int:
    if name not in fields:
        raise DataError(f"row 1: column {name!r} (data.{option}) is not in the header ({', '.join(fields)})",
                        where=str(path), hint=did_you_mean(name, fields) or f"set data.{option}")
    return fields[name][0]


def read_recbole(inter: Path, *, user: str, item: str, rating: str, timestamp: str | None,
                 item_features: list[str], user_features: list[str],
                 bins: dict[str, float]) -> Interactions:
    """``NAME.inter`` (+ ``NAME.item`` / ``NAME.user`` beside it for side features)."""
    rows = _atomic_rows(inter)
    fields = next(rows)
    iu, ii, ir = (_need(inter, fields, n, o) for n, o in ((user, "user_column"), (item, "item_column"),
                                                            (rating, "rating_column")))
    it = _need(inter, fields, timestamp, "timestamp_column") if timestamp is not None else None
    users, items, ratings, times, lines = [], [], [], ([] if it is not None else None), []
    for line, row in rows:
        users.append(row[iu])
        items.append(row[ii])
        ratings.append(_number(row[ir], inter, line, rating))
        if times is not None:
            times.append(_number(row[it], inter, line, timestamp))
        lines.append(line)
    data = _finish(inter, users, items, ratings, times, lines)
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
                            where=str(path.parent))
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
