"""Run reports: what an evaluator declares about a split, written for people.

"The core states, plugins declare": an evaluator (plugin side) says what its
split's report holds through :meth:`ft.Evaluator.report` (tables, figures to
draw, a line of markdown) and this module writes it, on rank 0, into the run
directory::

    report/
      report.json               every split's tables (card rows), figures and summary
      <table>_<split>.csv       each table, e.g. per_class_val.csv, confusion_test.csv
      <figure>_<split>.png      each figure, e.g. confusion_val.png, pred_vs_true_test.png

The model card shows the tables and links the figures (:func:`card_lines`).
The report is made from the final evaluation's evaluator (best weights
loaded), so it costs no second pass over the data.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

from .files import make_temp_dir, replace_dir, save_figure, write_csv_atomic, write_json_atomic

#: the run directory's folder of reports
REPORT_DIR = "report"
#: rows of a table the model card shows at most (the CSV has them all)
CARD_ROWS = 20
#: classes up to which a confusion heatmap is annotated with its counts
ANNOTATED_CLASSES = 25
#: classes up to which a confusion heatmap names its rows and columns
LABELLED_CLASSES = 60


@dataclass
class Table:
    """A table of a report, written as ``report/<name>_<split>.csv``.

    ``rows`` hold numbers and strings, one per column. ``card_rows`` says
    which rows the model card shows: None, every row (the first
    :data:`CARD_ROWS` when there are more); a sequence of row indices, those
    (``()``: the table is in the CSV only, e.g. a confusion matrix or raw
    pairs).
    """

    name: str
    columns: list[str]
    rows: list[list[Any]]
    title: str = ""
    card_rows: Sequence[int] | None = None


@dataclass
class Heatmap:
    """A matrix drawn as coloured cells, e.g. a confusion matrix (rows: true
    class, columns: predicted). Colours are row-normalised, so a rare class's
    errors show as clearly as a common one's; cells carry the counts when
    the matrix is small."""

    name: str
    matrix: list[list[float]]
    labels: list[str]
    title: str = ""
    x_label: str = "predicted"
    y_label: str = "true"


@dataclass
class Scatter:
    """Points in one panel per series (``{series: (xs, ys)}``), with the
    line ``y = x`` when ``diagonal`` (predicted against true values)."""

    name: str
    series: dict[str, tuple[list[float], list[float]]]
    title: str = ""
    x_label: str = "true"
    y_label: str = "predicted"
    diagonal: bool = True


@dataclass
class Curves:
    """Lines over a shared x axis (``{series: ys}``), e.g. metrics at K = 1..50."""

    name: str
    x: list[float]
    series: dict[str, list[float]]
    title: str = ""
    x_label: str = ""
    y_label: str = ""


#: a figure the core draws (matplotlib, Agg) as ``report/<name>_<split>.png``
Figure = Union[Heatmap, Scatter, Curves]


@dataclass
class Report:
    """What an evaluator's :meth:`ft.Evaluator.report` returns for one split:
    tables, figures to draw and a short markdown ``summary`` (one or two
    lines; shown in the model card above the tables)."""

    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    summary: str = ""


def report_files(reports: dict[str, Report | None]) -> list[str]:
    """The files :func:`write_reports` writes, relative to the run directory
    (the same on every rank, for the summary)."""
    files = []
    for split, report in reports.items():
        if report is None:
            continue
        files += [f"{REPORT_DIR}/{t.name}_{split}.csv" for t in report.tables]
        files += [f"{REPORT_DIR}/{f.name}_{split}.png" for f in report.figures]
    return [*files, f"{REPORT_DIR}/report.json"] if files else []


def write_reports(run_dir: Path, reports: dict[str, Report | None]) -> list[str]:
    """Every split's report as a fresh ``report/`` folder (built aside and
    swapped in, as ``best/`` is, so a kill leaves the old or the new one
    whole); the files written, relative to the run directory. Rank 0 only."""
    run_dir = Path(run_dir)
    files = report_files(reports)
    if not files:
        return []
    tmp = make_temp_dir(run_dir, f".{REPORT_DIR}.tmp-")
    try:
        index = {"splits": {split: _write_split(tmp, split, report)
                            for split, report in reports.items() if report is not None}}
        write_json_atomic(tmp / "report.json", index)
        replace_dir(tmp, run_dir / REPORT_DIR)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return files


def split_report(evaluator: Any, metrics: dict[str, float]) -> Report | None:
    """``evaluator.report()`` after the pass that gave ``metrics``, or None
    when the outputs were not finite (every figure is NaN then, and a
    confusion matrix of NaN scores would only look like one)."""
    if metrics and all(v != v for v in metrics.values()):
        return None
    return evaluator.report()


def refresh_report(run_dir: Path, split: str, report: Report | None) -> list[str]:
    """:func:`update_report`, with a warning instead of an error when the
    run directory cannot be written (a shared folder, an archive): ``ft
    eval`` still gives its figures."""
    try:
        return update_report(run_dir, split, report)
    except OSError as exc:
        import warnings

        warnings.warn(f"the {split} report was not written into {Path(run_dir) / REPORT_DIR}: "
                      f"{exc.strerror or exc}", stacklevel=2)
        return []


def update_report(run_dir: Path, split: str, report: Report | None) -> list[str]:
    """Rewrite one split's files in ``report/`` (``ft eval --split``),
    leaving the other splits' as they are; the files written. Rank 0 only."""
    if report is None:
        return []
    folder = Path(run_dir) / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    index = read_index(Path(run_dir)) or {"splits": {}}
    index["splits"][split] = _write_split(folder, split, report)
    write_json_atomic(folder / "report.json", index)
    return report_files({split: report})


def read_index(run_dir: Path) -> dict | None:
    """``report/report.json`` of a run, or None if it has none (or it is unreadable)."""
    try:
        index = json.loads((Path(run_dir) / REPORT_DIR / "report.json").read_text())
    except (OSError, ValueError):
        return None
    return index if isinstance(index, dict) and isinstance(index.get("splits"), dict) else None


def _write_split(folder: Path, split: str, report: Report) -> dict:
    """One split's CSVs and PNGs into ``folder``; its entry of report.json."""
    tables = []
    for table in report.tables:
        name = f"{table.name}_{split}.csv"
        write_csv_atomic(folder / name, table.columns, table.rows)
        shown = list(range(len(table.rows)) if table.card_rows is None else table.card_rows)[:CARD_ROWS]
        tables.append({"name": table.name, "title": table.title, "file": name, "columns": list(table.columns),
                       "card_rows": [list(table.rows[i]) for i in shown], "rows": len(table.rows),
                       "card_all": table.card_rows is None})
    figures = []
    for figure in report.figures:
        name = f"{figure.name}_{split}.png"
        draw(figure, folder / name, split)
        figures.append({"name": figure.name, "title": figure.title, "file": name})
    return {"summary": report.summary, "tables": tables, "figures": figures}


def card_lines(run_dir: Path) -> list[str]:
    """The model card's ``## Report`` section from ``report/report.json``:
    per split, the summary, each table's card rows as Markdown and links to
    the figures; nothing if the run has no report."""
    index = read_index(run_dir)
    if not index or not index["splits"]:
        return []
    lines = ["## Report", ""]
    for split, entry in index["splits"].items():
        lines += [f"### {split}", ""]
        if entry.get("summary"):
            lines += [entry["summary"], ""]
        for table in entry.get("tables", []):
            rows = table.get("card_rows") or []
            if not rows:
                continue
            if table.get("title"):
                lines += [f"{table['title']}:", ""]
            lines += ["| " + " | ".join(table["columns"]) + " |", "|---" * len(table["columns"]) + "|"]
            lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
            more = table.get("rows", len(rows)) - len(rows) if table.get("card_all") else 0
            lines += (["", f"{more} more rows in [{REPORT_DIR}/{table['file']}]({REPORT_DIR}/{table['file']})."]
                      if more > 0 else [])
            lines.append("")
        figures = [f"[{f.get('title') or f['name']}]({REPORT_DIR}/{f['file']})" for f in entry.get("figures", [])]
        csvs = [f"[{t['file']}]({REPORT_DIR}/{t['file']})" for t in entry.get("tables", [])]
        if figures or csvs:
            lines += ["Files: " + ", ".join(figures + csvs) + ".", ""]
    return lines


def _cell(value: Any) -> str:
    if value is None:  # a non-finite figure (JSON has no NaN)
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|")


# -- drawing --------------------------------------------------------------------


def draw(figure: Figure, path: Path, split: str = "") -> None:
    """Draw one declared figure to ``path`` (PNG, matplotlib's Agg backend),
    its title followed by the split's name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    painters = {Heatmap: _heatmap, Scatter: _scatter, Curves: _curves}
    fig = painters[type(figure)](plt, figure)
    title = f"{figure.title} ({split})" if figure.title and split else figure.title or split
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def _heatmap(plt, figure: Heatmap):
    import numpy as np

    matrix = np.asarray(figure.matrix, dtype=float)
    n = len(figure.labels)
    side = min(4 + 0.35 * n, 20)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if n <= LABELLED_CLASSES:
        ax.set_xticks(range(n), figure.labels, rotation=90 if n > 6 else 0)
        ax.set_yticks(range(n), figure.labels)
    if n <= ANNOTATED_CLASSES:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, f"{matrix[i, j]:g}", ha="center", va="center", fontsize=8,
                            color="white" if shares[i, j] > 0.5 else "black")
    ax.set_xlabel(figure.x_label)
    ax.set_ylabel(figure.y_label)
    return fig


def _scatter(plt, figure: Scatter):
    names = list(figure.series)
    cols = min(3, max(1, len(names)))
    rows = -(-len(names) // cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 4.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        xs, ys = figure.series[name]
        ax.scatter(xs, ys, s=6, alpha=0.5)
        if figure.diagonal and xs:
            low, high = min(min(xs), min(ys)), max(max(xs), max(ys))
            ax.plot([low, high], [low, high], color="grey", linewidth=1, linestyle="--")
        ax.set_title(name)
        ax.set_xlabel(figure.x_label)
        ax.set_ylabel(figure.y_label)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    return fig


def _curves(plt, figure: Curves):
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in figure.series.items():
        ax.plot(figure.x, ys, label=name)
    ax.set_xlabel(figure.x_label)
    ax.set_ylabel(figure.y_label)
    ax.grid(alpha=0.3)
    if figure.series:
        ax.legend()
    return fig
