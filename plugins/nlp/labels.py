"""From table rows to checked examples and targets, per task.

Each row gives an example (a text, or a ``(text, pair)`` tuple) and a
label: a class name (``classification``), class names joined by a delimiter
or a JSON list (``multilabel``, turned into a multi-hot vector) or a number
(``regression``). Rows are checked before anything trains; a bad row is a
:class:`ft.DataError` naming ``file: line N, column 'c'``, or, with
``data.skip_bad``, skipped and counted (with the rows the table reader
skipped as unreadable). Rows whose label is outside
``data.labels`` are an error, or with ``data.other_labels = "drop"`` a
filter (Rotten Tomatoes: keep fresh and rotten, drop the plot summaries).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch

from ft.errors import DataError

from .tables import SKIP_BAD, BadRow, Table, cell

SKIP_HINT = f"fix or remove the row, {SKIP_BAD}"


@dataclass
class Examples:
    """Checked rows of one table: examples, raw labels, and what was left out."""

    texts: list[Any] = field(default_factory=list)  # str or (str, str)
    labels: list[Any] = field(default_factory=list)  # str | list[str] | float, by task
    dropped_labels: Counter = field(default_factory=Counter)  # label outside data.labels -> rows dropped
    skipped: list[str] = field(default_factory=list)  # "file: line N...: why" of rows skipped as bad

    def subset(self, indices: list[int]) -> "Examples":
        """The examples at ``indices`` (without the drop / skip records)."""
        return Examples([self.texts[i] for i in indices], [self.labels[i] for i in indices])


def _text(table: Table, row, column: str) -> str:
    value = cell(table, row, column)
    if not isinstance(value, str):
        raise BadRow(f"expected a text, found {type(value).__name__} {value!r}", where=table.where(row, column))
    if not value.strip():
        raise BadRow("empty text", where=table.where(row, column))
    return value


def read_examples(table: Table, options, task_type: str) -> Examples:
    """The table's rows as checked examples (see the module docstring)."""
    out = Examples(skipped=list(table.skipped))
    known = set(options.labels) if options.labels else None
    for row in table.rows:
        try:
            label = _label(table, row, options, task_type, known, out.dropped_labels)
            if label is None:  # dropped: outside data.labels
                continue
            text = _text(table, row, options.text_column)
            example = (text, _text(table, row, options.text_pair_column)) if options.text_pair_column else text
        except BadRow as bad:
            if not options.skip_bad:
                raise DataError(bad.message, where=bad.where, hint=SKIP_HINT) from None
            out.skipped.append(f"{bad.where}: {bad.message}")
            continue
        out.texts.append(example)
        out.labels.append(label)
    return out


def _label(table: Table, row, options, task_type: str, known: set | None, dropped: Counter):
    column = options.label_column
    where = table.where(row, column)
    raw = cell(table, row, column)
    if task_type == "regression":
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise BadRow(f"expected a number, found {raw!r}", where=where) from None
        if not math.isfinite(value):
            raise BadRow(f"expected a finite number, found {raw!r}", where=where)
        return value
    if task_type == "multilabel":
        if isinstance(raw, dict) or (isinstance(raw, list) and any(isinstance(n, (list, dict)) for n in raw)):
            raise BadRow(f"expected labels (a list of names, or names joined by {options.label_delimiter!r}), "
                         f"found {raw!r}", where=where)
        names = raw if isinstance(raw, list) else str(raw if raw is not None else "").split(options.label_delimiter)
        names = list(dict.fromkeys(str(n).strip() for n in names if str(n).strip()))
        if known is not None:
            unknown = [n for n in names if n not in known]
            if unknown and options.other_labels == "error":
                raise _unknown(unknown[0], options, where)
            dropped.update(unknown)
            names = [n for n in names if n in known]
        return names
    if raw is None or isinstance(raw, (list, dict)) or not str(raw).strip():
        raise BadRow(f"expected a class label, found {raw!r}", where=where)
    name = str(raw).strip()
    if known is not None and name not in known:
        if options.other_labels == "error":
            raise _unknown(name, options, where)
        dropped[name] += 1
        return None
    return name


def _unknown(name: str, options, where: str) -> DataError:
    return DataError(f"label {name!r} is not in data.labels ({', '.join(options.labels)})", where=where,
                     hint="add it to data.labels, or set data.other_labels = \"drop\" to leave such labels out")


def class_names(options, examples: list[Examples], task_type: str) -> tuple[str, ...]:
    """``data.labels`` in their order, else every label found, sorted
    (numerically when all are integers)."""
    if task_type == "regression":
        return (options.label_column,)
    if options.labels:
        return tuple(options.labels)
    found: set[str] = set()
    for ex in examples:
        for label in ex.labels:
            found.update(label if isinstance(label, list) else [label])
    if all(_is_int(n) for n in found):
        return tuple(sorted(found, key=int))
    return tuple(sorted(found))


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def targets(labels: list, names: tuple[str, ...], task_type: str) -> torch.Tensor:
    """Class indices (long ``[N]``), multi-hot rows (float ``[N, C]``) or values (float ``[N]``)."""
    if task_type == "regression":
        return torch.tensor(labels, dtype=torch.float32)
    index = {n: i for i, n in enumerate(names)}
    if task_type == "multilabel":
        out = torch.zeros(len(labels), len(names))
        for row, label in zip(out, labels):
            row[[index[n] for n in label]] = 1.0
        return out
    return torch.tensor([index[n] for n in labels], dtype=torch.long)
