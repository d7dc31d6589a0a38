"""``ft compare RUN_DIR...``: finished runs side by side, so a strategy
comparison needs no script.

One table, one row per run: the recipe keys whose values differ between the
runs (dotted, e.g. ``freeze.strategy``, ``optim.lr``), how the run ended,
its best epoch, the final validation and test figures (``summary.json``),
the training time and the trainable weights. And one plot of every run's
curves (the watched validation metric and the training loss per epoch),
each labelled by its differing keys.

A folder that is not a run directory but holds run directories (a sweep's
``trials/*/``, a folder of runs) stands for all of them. A run without
``summary.json`` (still training, or killed) is shown as ``unfinished``
with its last epoch's validation figures from ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .errors import FtError
from .files import finite_or_none, save_figure
from .rundir import MetricsLog

#: recipe sections left out of the differing keys: where a run was written differs for every run
IGNORED_SECTIONS = ("output",)
#: what an unfinished run shows as its status
UNFINISHED = "unfinished"
#: the default file of the combined curves plot
DEFAULT_PLOT = "compare.png"


@dataclass
class RunRecord:
    """What ``ft compare`` reads from one run directory."""

    path: Path
    recipe: dict[str, Any]  # flattened: dotted key -> value
    summary: dict | None
    history: list[dict] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``finished``, how else it ended (``early_stopping``, ``time_limit``,
        a sweep's pruning...: ``summary.json``'s ``stopped``) or ``unfinished``."""
        if not self.summary:
            return UNFINISHED
        stopped = self.summary.get("stopped")
        return "finished" if stopped in (None, "epochs") else str(stopped)

    def metrics(self) -> dict[str, dict[str, float]]:
        """Final figures per split; an unfinished run's last epoch's validation figures."""
        if self.summary:
            return {split: dict(m) for split, m in (self.summary.get("metrics") or {}).items() if isinstance(m, dict)}
        last = self.history[-1] if self.history else {}
        val = {k[4:]: v for k, v in last.items() if k.startswith("val_")}
        return {"val": val} if val else {}

    def monitor(self) -> str:
        """The validation metric the run watched (``val_...``), for the plot."""
        if self.summary and self.summary.get("monitor"):
            return str(self.summary["monitor"])
        if self.recipe.get("train.monitor"):
            return str(self.recipe["train.monitor"])
        keys = [k for h in self.history for k in h if k.startswith("val_") and k != "val_loss"]
        return keys[0] if keys else "val_loss"

    def to_json(self, keys: Sequence[str]) -> dict:
        """This run's row as JSON."""
        summary = self.summary or {}
        last = self.history[-1] if self.history else {}
        return {
            "run_dir": str(self.path), "status": self.status,
            "recipe": {k: self.recipe.get(k) for k in keys},
            "best_epoch": summary.get("best_epoch"), "monitor": self.monitor(),
            "epochs_run": summary.get("epochs_run", len(self.history)),
            "metrics": self.metrics(),
            "train_seconds": summary.get("train_seconds", last.get("elapsed")),
            "trainable": (summary.get("params") or {}).get("trainable"),
        }


def compare(run_dirs: Sequence[str | Path], *, out: str | Path | None = None, as_json: bool = False) -> dict:
    """Print one table of the runs (``as_json``: the same as JSON) and write
    their curves to ``out`` (default ``compare.png``); returns what the JSON
    holds: ``{"keys", "runs", "plot"}``. A folder without ``recipe.toml``
    stands for the run directories below it (a sweep folder)."""
    runs = [read_run(path) for path in expand(run_dirs)]
    keys = differing_keys([r.recipe for r in runs])
    plot = plot_runs(runs, keys, _plot_path(out))
    result = {"keys": keys, "runs": [r.to_json(keys) for r in runs], "plot": str(plot)}
    if as_json:
        print(json.dumps(finite_or_none(result), indent=2, default=str))
    else:
        print_table(result)
    return result


# -- finding and reading the runs --------------------------------------------------


def expand(paths: Sequence[str | Path]) -> list[Path]:
    """The run directories ``paths`` name, in order, each once: a folder
    with ``recipe.toml`` is one; any other folder stands for the run
    directories below it (not looking inside a run directory)."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise FtError("no such folder", where=str(path), hint="give run directories or a sweep folder")
        if not path.is_dir():
            raise FtError("not a run directory (a file, not a folder)", where=str(path),
                          hint="give the run's folder, the one holding recipe.toml")
        below = [path] if (path / "recipe.toml").is_file() else _runs_below(path)
        if not below:
            raise FtError("not a run directory: no recipe.toml in it or in any folder below it", where=str(path),
                          hint="give folders that `ft run` wrote (or a sweep folder holding them)")
        found += below
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def _runs_below(root: Path) -> list[Path]:
    runs = []
    for folder, subdirs, files in os.walk(root):
        if "recipe.toml" in files and Path(folder) != root:
            runs.append(Path(folder))
            subdirs[:] = []  # a run's own folders (checkpoints, best) hold no other runs
            continue
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
    return sorted(runs, key=_natural)


def _natural(path: Path) -> list:
    """trials/2 before trials/10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def read_run(path: Path) -> RunRecord:
    """A run directory's recipe (flattened), summary (None if unfinished) and per-epoch log."""
    recipe_path = path / "recipe.toml"
    try:
        recipe = tomllib.loads(recipe_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise FtError(f"cannot read the run's recipe: {exc}", where=str(recipe_path),
                      hint="the run directory is damaged: leave it out of the comparison") from None
    summary = None
    summary_path = path / "summary.json"
    if summary_path.exists():
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FtError(f"cannot read the run's summary: {exc}", where=str(summary_path),
                          hint="the run directory is damaged: leave it out, or evaluate it again with ft eval") \
                from None
        if not isinstance(summary, dict):
            raise FtError("the run's summary is not a JSON object", where=str(summary_path),
                          hint="the run directory is damaged: leave it out of the comparison")
    return RunRecord(path, flatten(recipe), summary, MetricsLog(path / "metrics.jsonl").read())


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """Nested tables as dotted keys: ``{"optim": {"lr": 0.1}} -> {"optim.lr": 0.1}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def differing_keys(recipes: Sequence[dict[str, Any]]) -> list[str]:
    """The dotted keys whose value is not the same in every recipe (set in
    some but not all counts), in recipe order; the ``output`` section aside."""
    keys: dict[str, None] = {}
    for recipe in recipes:
        keys.update(dict.fromkeys(recipe))
    missing = object()
    return [key for key in keys if key.split(".")[0] not in IGNORED_SECTIONS
            and len({json.dumps(r.get(key, missing), sort_keys=True, default=repr) for r in recipes}) > 1]


# -- showing them ---------------------------------------------------------------


def label(run: dict, keys: Sequence[str]) -> str:
    """A run's name in the plot: its differing keys' values, else its folder."""
    # keys the run does not set say nothing about it; a long list is better read in the table
    shown = ", ".join(f"{k}={_value(run['recipe'][k])}" for k in keys if run["recipe"].get(k) is not None)
    return shown if shown and len(shown) <= 60 else Path(run["run_dir"]).name


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value == value else "nan"
    return "-" if value is None else str(value)


def metric_columns(runs: Sequence[dict]) -> list[tuple[str, str]]:
    """``(split, metric)`` pairs shown: validation then test, the loss last."""
    columns = []
    for split in ("val", "test"):
        names = {name for run in runs for name in run["metrics"].get(split, {})}
        columns += [(split, name) for name in sorted(names - {"loss"})] + ([(split, "loss")] if "loss" in names else [])
    return columns


def print_table(result: dict) -> None:
    """The comparison as one rich table on stdout (as wide as it needs when
    stdout is not a terminal; a terminal folds long cells)."""
    from rich.console import Console
    from rich.table import Table

    runs, keys = result["runs"], result["keys"]
    columns = metric_columns(runs)
    headers = ["run", *keys, "status", "best epoch", *(f"{split} {metric}" for split, metric in columns),
               "train time", "trainable"]
    rows = []
    for run in runs:
        seconds, trainable = run["train_seconds"], run["trainable"]
        rows.append([_short(run["run_dir"]), *(_value(run["recipe"].get(k)) for k in keys), run["status"],
                     _figure(run["best_epoch"]),
                     *(_figure(run["metrics"].get(split, {}).get(metric)) for split, metric in columns),
                     f"{seconds:.1f} s" if isinstance(seconds, (int, float)) else "-",
                     f"{trainable:,}" if isinstance(trainable, int) else "-"])
    table = Table(title=f"ft compare: {len(runs)} run(s)")
    numeric = len(headers) - len(columns) - 2
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if i >= numeric else "left", overflow="fold")
    for row in rows:
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:  # a file or a pipe: every cell whole on one line
        natural = sum(max(len(h), *(len(r[i]) for r in rows)) + 3 for i, h in enumerate(headers)) + 1
        console = Console(width=max(80, natural))
    console.print(table)
    if not keys and len(runs) > 1:
        console.print("ft: the runs' recipes are the same (apart from output)")
    console.print(f"ft: curves of every run in {result['plot']}")


def _short(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def _plot_path(out: str | Path | None) -> Path:
    path = Path(out) if out else Path(DEFAULT_PLOT)
    if path.is_dir():
        path = path / DEFAULT_PLOT
    return path


def plot_runs(runs: Sequence[RunRecord], keys: Sequence[str], path: Path) -> Path:
    """Every run's watched validation metric and training loss per epoch,
    in two panels, written to ``path`` (its suffix picks the format)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import MaxNLocator

    monitors = {run.monitor() for run in runs}
    names = [label(run.to_json(keys), keys) for run in runs]
    names = [f"{name} ({_short(str(run.path))})" if names.count(name) > 1 else name for name, run in zip(names, runs)]
    fig, (metric_ax, loss_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for run, name in zip(runs, names):
        epochs = [h.get("epoch") for h in run.history]
        monitor = run.monitor()
        metric_ax.plot(epochs, [_nan(h.get(monitor)) for h in run.history], marker="o", markersize=3,
                       label=name if len(monitors) == 1 else f"{name} ({monitor})")
        loss_ax.plot(epochs, [_nan(h.get("train_loss")) for h in run.history], marker="o", markersize=3, label=name)
    metric_ax.set_title(next(iter(monitors)) if len(monitors) == 1 else "each run's watched validation metric")
    loss_ax.set_title("train_loss")
    for ax in (metric_ax, loss_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if runs:  # one legend under both panels: long labels must not cover the curves
        handles, labels = metric_ax.get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(runs)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 * (1 + (len(runs) - 1) // 3), 1, 1))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_figure(fig, path)
    except (ValueError, OSError) as exc:  # an unknown suffix, a folder that cannot be written
        raise FtError(f"cannot write the curves plot: {exc}", where=str(path),
                      hint="give --out a writable path ending in .png (or .pdf, .svg)") from None
    return path


def _nan(value: Any) -> float:
    return float("nan") if value is None else value
