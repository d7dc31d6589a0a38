"""What a sweep leaves in its folder, computed from the study (so every
worker on every machine writes the same): ``results.csv`` and the table
printed at the end, ``search.png``, ``best.toml`` and ``best.json``."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import FtError
from .files import save_figure, write_csv_atomic, write_json_atomic, write_text_atomic
from .sweep_space import Param, shown
from .sweep_study import failure, shown_url

if TYPE_CHECKING:
    from .sweep import SweepContext

#: trials the printed table shows at most (the best ones; results.csv has all)
TABLE_ROWS = 30


@dataclass
class Row:
    """One trial as the results show it (surplus trials, which never ran, are left out)."""

    number: int
    state: str  # complete | pruned | failed | running | waiting
    params: dict[str, Any]
    value: float | None  # the best validation figure the trial reached (a pruned one: before it was stopped)
    epochs: int | None
    seconds: float | None
    host: str
    run_dir: str
    note: str = ""
    intermediate: dict[int, float] = field(default_factory=dict)


def trial_rows(trials: list) -> list[Row]:
    """The rows of a study's trials, in trial order."""
    retried_as = {t.user_attrs["retry_of"]: t.number for t in trials if "retry_of" in t.user_attrs}
    rows = []
    for t in trials:
        state = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
                 "WAITING": "waiting"}[t.state.name]
        if state == "failed" and failure(t) == "surplus":
            continue
        note = ""
        if state == "pruned":
            note = f"pruned after epoch {t.last_step}" if t.last_step is not None else "pruned"
        elif state == "failed":
            why = failure(t)
            note = {"error": f"error: {t.user_attrs.get('error', '?')}", "interrupted": "interrupted (Ctrl-C)",
                    "died": "its worker died"}.get(why, why)
            if t.number in retried_as:
                note += f"; retried as trial {retried_as[t.number]}"
        elif state == "waiting" and "retry_of" in t.user_attrs:
            note = f"retry of trial {t.user_attrs['retry_of']}"
        value = t.value if state == "complete" else t.user_attrs.get("value")
        rows.append(Row(t.number, state, dict(t.params), value, t.user_attrs.get("epochs"),
                        t.user_attrs.get("seconds"), t.user_attrs.get("host", ""), t.user_attrs.get("run_dir", ""),
                        note, dict(t.intermediate_values)))
    return rows


def param_keys(rows: list[Row], params: list[Param]) -> list[str]:
    """The searched keys: the recipe's, in order, then any older trial's."""
    keys = [p.key for p in params]
    for row in rows:
        keys += [k for k in row.params if k not in keys]
    return keys


def write_results_csv(path: Path, rows: list[Row], keys: list[str], monitor: str) -> None:
    """``results.csv``: trial, state, one column per searched key, the
    validation figure, epochs, seconds, host, run directory, note."""
    write_csv_atomic(path, ["trial", "state", *keys, monitor, "epochs", "seconds", "host", "run_dir", "note"],
                     ([row.number, row.state, *(row.params.get(k, "") for k in keys),
                       "" if row.value is None else row.value, "" if row.epochs is None else row.epochs,
                       "" if row.seconds is None else round(row.seconds, 1), row.host, row.run_dir, row.note]
                      for row in rows))


def _cell(value: Any) -> str:
    return "" if value is None else shown(value)


def print_table(rows: list[Row], keys: list[str], monitor: str, best: int | None, maximize: bool) -> None:
    """The trials as a table (the best :data:`TABLE_ROWS` of a long study), the winner in bold."""
    from rich.console import Console
    from rich.table import Table

    shown = rows
    if len(rows) > TABLE_ROWS:
        scored = sorted((r for r in rows if r.value is not None), key=lambda r: r.value, reverse=maximize)
        shown = sorted(scored[:TABLE_ROWS], key=lambda r: r.number)
    title = f"sweep: {len(rows)} trials" + (f" (the best {len(shown)} shown; all in results.csv)"
                                             if len(shown) < len(rows) else "")
    table = Table(title=title)
    for col in ("trial", "state", *keys, monitor, "epochs", "seconds", "note"):
        table.add_column(col, justify="right" if col not in ("state", "note") else "left")
    for row in shown:
        table.add_row(str(row.number), row.state, *(_cell(row.params.get(k)) for k in keys), _cell(row.value),
                      _cell(row.epochs), _cell(row.seconds), row.note,
                      style="bold green" if row.number == best else ("dim" if row.state != "complete" else None))
    Console(width=max(120, Console().width)).print(table)


def plot_search(path: Path, rows: list[Row], keys: list[str], params: list[Param], monitor: str,
                maximize: bool) -> None:
    """``search.png``: the validation figure of every trial with the best so
    far (pruned trials marked x, at the best figure they reached), then one
    panel per searched key against the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    scored = [r for r in rows if r.value is not None and math.isfinite(r.value)]
    panels = 1 + len(keys)
    cols = min(3, panels)
    lines = -(-panels // cols)
    fig, axes = plt.subplots(lines, cols, figsize=(5 * cols, 3.6 * lines), squeeze=False)
    ax = axes[0][0]
    done = [r for r in scored if r.state == "complete"]
    pruned = [r for r in scored if r.state == "pruned"]
    ax.plot([r.number for r in done], [r.value for r in done], "o", color="tab:blue", label="complete")
    if pruned:
        ax.plot([r.number for r in pruned], [r.value for r in pruned], "x", color="tab:gray", label="pruned")
    best, xs, ys = None, [], []
    for r in sorted(done, key=lambda r: r.number):
        if best is None or (r.value > best if maximize else r.value < best):
            best = r.value
        xs.append(r.number)
        ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="tab:red", label="best so far")
        winner = min(done, key=lambda r: -r.value if maximize else r.value)
        ax.plot([winner.number], [winner.value], "*", color="tab:red", markersize=12, label=f"trial {winner.number}")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{monitor} (validation)")
    ax.set_title("objective per trial")
    ax.legend(fontsize=8)
    logs = {p.key: p.log for p in params}
    for i, key in enumerate(keys, start=1):
        ax = axes[i // cols][i % cols]
        with_key = [r for r in scored if key in r.params]
        values = [r.params[key] for r in with_key]
        categorical = any(isinstance(v, (str, bool)) for v in values)
        if categorical:
            names = list(dict.fromkeys(str(v) for v in values))
            x = [names.index(str(v)) for v in values]
            ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
            ax.set_xlim(-0.5, len(names) - 0.5)
        else:
            x = values
            if logs.get(key):
                ax.set_xscale("log")
        colors = ["tab:gray" if r.state == "pruned" else "tab:blue" for r in with_key]
        ax.scatter(x, [r.value for r in with_key], c=colors, marker="o", s=18)
        ax.set_xlabel(key)
        ax.set_ylabel(monitor)
    for j in range(panels, lines * cols):
        axes[j // cols][j % cols].axis("off")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def write_best_toml(path: Path, recipe: dict, trial: int, monitor: str, value: float, study: str) -> None:
    """``best.toml``: the winning recipe (its values applied, no ``[sweep]``), runnable as it is."""
    import tomli_w

    header = (f"# The winner of the sweep {study!r}: trial {trial}, validation {monitor} = {value:.6g}.\n"
              f"# The resolved recipe with the trial's values (paths absolute); train it with:\n"
              f"#   ft run {path}\n\n")
    write_text_atomic(path, header + tomli_w.dumps(recipe))


# -- the sweep folder, from the study ---------------------------------------------------


def write_results(ctx: SweepContext, study: Any) -> tuple[list[Row], list[str], bool]:
    """results.csv and search.png from the whole study: its rows, the
    searched keys, and whether larger figures are better."""
    rows = trial_rows(study.get_trials(deepcopy=False))
    keys = param_keys(rows, ctx.space.params)
    monitor = study.user_attrs.get("monitor", "value")
    maximize = study.direction.name == "MAXIMIZE"
    write_results_csv(ctx.sweep_dir / "results.csv", rows, keys, monitor)
    plot_search(ctx.sweep_dir / "search.png", rows, keys, ctx.space.params, monitor, maximize)
    return rows, keys, maximize


def report(ctx: SweepContext, study: Any) -> dict | None:
    """The sweep folder's files and the printed table; the winner (the best
    complete trial) scored on test, recorded in best.toml and best.json.
    Returns what best.json holds (None while no trial has completed)."""
    rows, keys, maximize = write_results(ctx, study)
    monitor = study.user_attrs.get("monitor", "value")
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    best = study.best_trial if complete else None
    print_table(rows, keys, monitor, best.number if best else None, maximize)
    if best is None:
        ctx.say(f"no trial has completed yet: no winner (results in {ctx.sweep_dir / 'results.csv'})")
        return None
    recipe = ctx.trial_recipe(best.params, None).to_dict()
    write_best_toml(ctx.sweep_dir / "best.toml", recipe, best.number, monitor, best.value, ctx.study_name)
    test, note = score_winner(ctx, best)
    counts = {state: sum(r.state == state for r in rows) for state in ("complete", "pruned", "failed")}
    record = {"study": ctx.study_name, "storage": shown_url(ctx.url), "trial": best.number, "params": best.params,
              "monitor": monitor, "direction": study.direction.name.lower(), "val": best.value, "test": test,
              "test_note": note, "run_dir": best.user_attrs.get("run_dir"), "host": best.user_attrs.get("host"),
              "recipe": str(ctx.sweep_dir / "best.toml"), "trials": counts}
    write_json_atomic(ctx.sweep_dir / "best.json", record)
    shown_test = "  ".join(f"test_{k} {v:.4f}" for k, v in (test or {}).items()) or f"test: {note}"
    ctx.say(f"best {monitor} {best.value:.4f} in trial {best.number} ("
            + ", ".join(f"{k}={shown(v)}" for k, v in best.params.items()) + f"); {shown_test}")
    ctx.say(f"{ctx.sweep_dir}: results.csv, search.png, best.json, best.toml "
            f"(ft run {ctx.sweep_dir / 'best.toml'})")
    return record


def score_winner(ctx: SweepContext, best: Any) -> tuple[dict | None, str | None]:
    """The winner's test metrics and, without them, why (its run directory
    is on another machine, the data has no test split); reused from
    best.json when it already scored this trial. Under torchrun the other
    ranks evaluate with rank 0 (:func:`ft.sweep_trials.follow`)."""
    from .engine import evaluate_run

    earlier = ctx.sweep_dir / "best.json"
    if earlier.exists():
        try:
            held = json.loads(earlier.read_text())
            if held.get("trial") == best.number and held.get("test"):
                return held["test"], None
        except ValueError:
            pass
    run_dir = best.user_attrs.get("run_dir", "")
    if not run_dir or not Path(run_dir).is_dir():
        host = best.user_attrs.get("host", "another machine")
        return None, f"the winner ran on {host}: score it there with ft eval {run_dir} --split test"
    if ctx.dist is not None:
        ctx.dist.broadcast_object(("evaluate", run_dir))
    try:
        return evaluate_run(run_dir, "test"), None
    except FtError as exc:
        return None, exc.message
