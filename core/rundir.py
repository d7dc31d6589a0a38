"""The run directory: everything a finished (or interrupted) run leaves,
and :class:`RunDirectory`, the one object that writes it.

::

    recipe.toml      resolved recipe (defaults filled in)
    run.json         what the run was made from (recipe, data fingerprints) and its resumes
    env.json         versions, device, command
    task.json        task inferred from the data (classes, id maps)
    data.json        data facts (sizes, class names, skipped files)
    metrics.jsonl    one JSON line per epoch (strict JSON: null for a non-finite value)
    checkpoints/     epoch-N/ directories and a `latest.json` pointer
    best/            model.safetensors + metrics.json of the best epoch
    summary.json     final metrics per split, timings, parameter counts
    curves.png       loss and metrics per epoch
    MODEL_CARD.md    what was trained, on what, how well
    .lock            held (flock) by the process writing the run
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from .checkpoint import save_best, save_training_checkpoint
from .files import finite_or_none, save_figure, write_json_atomic, write_text_atomic  # noqa: F401 (public here)
from .errors import FtError

#: what a run writes at its top level (a fresh start clears an unfinished earlier start's files)
RUN_FILES = ("recipe.toml", "run.json", "env.json", "task.json", "data.json", "metrics.jsonl", "summary.json",
             "curves.png", "MODEL_CARD.md", "report", "best", "checkpoints", "cache")


class RunDirectory:
    """The one writer of a run directory (rank 0's; other ranks hold one
    that writes nothing).

    :meth:`open` creates the folder, takes an exclusive lock on it (a
    second ``ft run`` into the same folder gets a clear error, never a
    mixture of two runs) and repairs what a killed run left half done.
    Nothing calls it before the recipe, the plugins and the data are known
    good, so a failed start leaves no folder behind.
    """

    def __init__(self, path: str | Path, *, main: bool = True):
        self.path = Path(path)
        self.main = main
        self._lock = None
        self.repaired: list[str] = []  # what open() found half done and finished or undid

    def __fspath__(self) -> str:
        return str(self.path)

    # -- claiming -------------------------------------------------------------

    def open(self, *, fresh: bool) -> "RunDirectory":
        """Create (if needed), lock and repair the folder; ``fresh`` clears
        the files of an earlier start that never reached a checkpoint."""
        if not self.main:
            return self
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise FtError("the run directory path is a file, not a folder", where=str(self.path),
                          hint="choose another output.dir") from None
        except OSError as exc:
            raise FtError(f"cannot create the run directory: {exc.strerror}", where=str(self.path),
                          hint="choose an output.root (or output.dir) you can write to") from None
        self._take_lock()
        self.repaired = self.repair()
        if fresh:
            for name in RUN_FILES:
                target = self.path / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        return self

    def close(self) -> None:
        """Release the lock (the process ending releases it too)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _take_lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # no flock on this platform: one writer is the user's care
            return
        handle = (self.path / ".lock").open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise FtError(f"another ft process is writing this run directory ({holder})", where=str(self.path),
                          hint="wait for it to finish, or write this run to another output.dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._lock = handle

    def repair(self) -> list[str]:
        """Finish or undo what a killed run left half done; returns what it did.

        A folder swap (``best/``, ``checkpoints/epoch-N/``) renames the old
        folder aside, the new one into place, then deletes the old: a kill
        between the renames leaves ``.NAME.old-*`` without ``NAME``, which
        is put back (the checkpoint ``latest.json`` names is at most as new
        as it, so a resume replays what follows). Temporary files and
        folders are deleted; a metrics line cut short is dropped. Damage no
        kill can cause (a checkpoint missing a file, a garbled
        ``latest.json``) is left alone: reading it gives an error naming it.
        """
        done: list[str] = []
        for folder in (self.path, self.path / "checkpoints"):
            if not folder.is_dir():
                continue
            for entry in sorted(folder.iterdir()):
                name = entry.name
                if name.startswith(".") and ".old-" in name:
                    target = folder / name[1:name.index(".old-")]
                    if target.exists():
                        _remove(entry)
                        done.append(f"removed {entry.name}")
                    else:
                        os.replace(entry, target)
                        done.append(f"restored {target.name}")
                elif name.startswith(".") and (".tmp" in name):
                    _remove(entry)
                    done.append(f"removed {entry.name}")
        log = MetricsLog(self.path / "metrics.jsonl")
        if log.drop_partial_line():
            done.append("dropped a cut-off line of metrics.jsonl")
        return done

    # -- what the run writes --------------------------------------------------

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def metrics_log(self) -> "MetricsLog | None":
        return MetricsLog(self.path / "metrics.jsonl") if self.main else None

    def save_best(self, model: Any, metrics: dict, dist: Any, sharded: bool) -> None:
        """``best/``: the model as it is now and the epoch's metrics (every rank calls this)."""
        save_best(self.path, model, metrics, dist, sharded)

    def save_checkpoint(self, name: str, parts: Any, meta: dict, dist: Any, device: Any, keep: int,
                        rank_state: dict | None = None) -> Path:
        """``checkpoints/NAME/`` and the ``latest.json`` pointer (every rank calls this)."""
        return save_training_checkpoint(self.checkpoints, name, parts, meta, dist, device, keep, rank_state)

    def replace_best_model(self, model: Any, dist: Any) -> None:
        """``best/model.safetensors`` replaced by ``model`` as it is now (a
        strategy's final touch, e.g. AdaBN's statistics); every rank calls
        this, rank 0 writes (gathered first when sharded)."""
        from .checkpoint import save_state_dict, save_weights
        from .parallel import full_state_dict, is_sharded

        state = full_state_dict(model) if is_sharded(model) else None
        if self.main:
            path = self.path / "best" / "model.safetensors"
            path.parent.mkdir(exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            save_state_dict(state, tmp) if state is not None else save_weights(model, tmp)
            os.replace(tmp, path)
        dist.barrier()

    def finish(self, summary: dict, history: list[dict], recipe: dict) -> None:
        """The end of a run: summary.json, curves.png and MODEL_CARD.md."""
        if not self.main:
            return
        self.write_json("summary.json", summary)
        if history:
            plot_curves(history, self.path / "curves.png")
        write_model_card(self.path, recipe, summary)

    def write_json(self, name: str, data: Any) -> None:
        if self.main:
            write_json_atomic(self.path / name, data)

    def write_text(self, name: str, text: str) -> None:
        if self.main:
            write_text_atomic(self.path / name, text)

    def read_json(self, name: str) -> Any:
        path = self.path / name
        return json.loads(path.read_text()) if path.exists() else None

    def record_start(self, recipe: Any, fingerprints: dict, environment_: dict, task: dict, data: dict,
                     resumed_with: dict | None) -> None:
        """The start files: recipe.toml, run.json, env.json (first start only), task.json, data.json."""
        if not self.main:
            return
        run = self.read_json("run.json") if resumed_with is not None else None
        run = run or {"created": datetime.now().isoformat(timespec="seconds"), "resumes": []}
        if resumed_with is not None:
            run["resumes"].append({"time": datetime.now().isoformat(timespec="seconds"),
                                   "command": " ".join(sys.argv),
                                   "changed": {k: list(v) for k, v in resumed_with.items()}})
        run.update({"recipe": recipe.to_dict(), "data_files": fingerprints})
        self.write_text("recipe.toml", recipe.to_toml())
        self.write_json("run.json", run)
        if resumed_with is None or not (self.path / "env.json").exists():
            self.write_json("env.json", environment_)
        self.write_json("task.json", task)
        self.write_json("data.json", data)

    def started(self) -> bool:
        """Whether a run has started here (its recipe is recorded)."""
        return (self.path / "recipe.toml").exists()


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def new_run_dir(root: str | Path, recipe_name: str) -> Path:
    """Create ``root/<recipe>-<YYYYmmdd-HHMMSS>`` (suffixed if taken, also
    by a run starting at the same moment)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{recipe_name}-{stamp}"
    path, n = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        except OSError as exc:
            raise FtError(f"cannot create the run directory: {exc.strerror}", where=str(path),
                          hint="choose an output.root you can write to (--set output.root=...)") from None


def environment(device: str, precision: str, world_size: int = 1, backend: str | None = None, *,
                components: list[dict] | None = None) -> dict[str, Any]:
    """env.json: versions, platform, device, command and, as ``components``,
    the plugin, distribution and version behind every component the run uses
    (see :mod:`ft.provenance`; ``ft eval`` reads it back to name a missing
    plugin)."""
    import torch

    versions = {"python": sys.version.split()[0], "torch": torch.__version__}
    for name in ("ftkit", "timm", "transformers", "torchaudio", "peft", "pluggy", "safetensors"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:
            pass
    return {
        "versions": versions,
        "platform": platform.platform(),
        "device": device,
        "precision": precision,
        "world_size": world_size,
        "backend": backend,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
        "command": " ".join(sys.argv),
        "started": datetime.now().isoformat(timespec="seconds"),
        "components": components or [],
    }


class MetricsLog:
    """Append-only JSON-lines log; each line is flushed as it is written.
    Strict JSON: a non-finite number is written as ``null``."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, record: dict) -> None:
        with self.path.open("a") as fh:
            fh.write(strict_json({"time": round(time.time(), 3), **record}) + "\n")

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:  # a line a kill cut short
                continue
        return records

    def truncate_after(self, epoch: int) -> None:
        """Drop records past ``epoch`` (a resumed run replays those epochs)."""
        kept = [r for r in self.read() if (r.get("epoch") or 0) <= epoch]
        write_text_atomic(self.path, "".join(strict_json(r) + "\n" for r in kept))

    def drop_partial_line(self) -> bool:
        """Remove a last line a kill cut short; True if there was one."""
        if not self.path.exists():
            return False
        text = self.path.read_text()
        if not text or text.endswith("\n"):
            return False
        write_text_atomic(self.path, text[:text.rfind("\n") + 1])
        return True


def strict_json(data: Any) -> str:
    """One line of standard JSON (no bare NaN/Infinity tokens)."""
    return json.dumps(finite_or_none(data), allow_nan=False, default=str)


def plot_curves(history: list[dict], path: Path) -> None:
    """Loss and metric curves per epoch, written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    losses = [k for k in ("train_loss", "val_loss") if any(k in h for h in history)]
    metrics = sorted({k for h in history for k in h if k.startswith("val_") and k != "val_loss"})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for key in losses:
        axes[0].plot(epochs, [h.get(key, float("nan")) for h in history], marker="o", label=key)
    axes[0].set_xlabel("epoch")
    axes[0].set_title("loss")
    for key in metrics:
        axes[1].plot(epochs, [h.get(key, float("nan")) for h in history], marker="o", label=key)
    axes[1].set_xlabel("epoch")
    axes[1].set_title("validation metrics")
    for ax in axes:
        if ax.lines:
            ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def write_model_card(run_dir: Path, recipe: dict, summary: dict) -> None:
    """A short MODEL_CARD.md: what, on what, which plugin (distribution,
    version) provided each component (``summary["components"]``, else
    env.json's), how well (first, in bold, ``summary["note"]`` when
    ``time_limit`` cut the run short; then each split's report from
    ``report/``: per-class tables and links to the figures), how to
    reproduce."""
    from .report import card_lines

    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = [
        f"# {run_dir.name}",
        "",
        "Fine-tuned with ftkit.",
        "",
        "## Model",
        f"- backbone: `{recipe['backbone'].get('name')}` (weights: `{recipe['backbone'].get('weights', 'default')}`)",
        f"- head: `{recipe['head'].get('type')}`; task: `{recipe['task']['type']}`",
        f"- freeze strategy: `{recipe['freeze'].get('strategy')}`",
        f"- parameters: {summary.get('params', {}).get('trainable', '?'):,} trainable of "
        f"{summary.get('params', {}).get('total', '?'):,}" if summary.get("params") else "",
        "",
        "## Data",
        f"- format: `{recipe['data'].get('format')}`",
        *(f"- {k}: `{v}`" for k, v in recipe["data"].items() if k != "format"),
        "",
        "## Results",
        *((f"**Warning: {summary['note']}.**", "") if summary.get("note") else ()),
        "| split | " + " | ".join(sorted({k for m in summary.get("metrics", {}).values() for k in m})) + " |",
    ]
    keys = sorted({k for m in summary.get("metrics", {}).values() for k in m})
    lines.append("|---" * (len(keys) + 1) + "|")
    for split, m in summary.get("metrics", {}).items():
        lines.append(f"| {split} | " + " | ".join(fmt(m.get(k, "")) for k in keys) + " |")
    lines += [
        "",
        f"Best epoch: {summary.get('best_epoch')}; training time {summary.get('train_seconds', 0):.1f} s "
        f"on {summary.get('device')} ({summary.get('precision')}).",
        "",
        *card_lines(run_dir),
        "## Reproduce",
        f"`ft run {run_dir / 'recipe.toml'} --set output.dir={run_dir.name}-repro`",
        "",
        "## Limits",
        "Metrics are on the splits above only; check the data card of the dataset for what it covers.",
        "",
    ]
    components = summary.get("components") or recorded_components(run_dir)
    if components:
        lines[lines.index("## Results"):lines.index("## Results")] = [
            "## Components",
            "| kind | name | plugin | distribution | version |",
            "|---|---|---|---|---|",
            *(f"| {c.get('kind')} | `{c.get('name')}` | {c.get('plugin')} | {c.get('distribution')} | "
              f"{c.get('version') or '-'} |" for c in components),
            "",
        ]
    write_text_atomic(run_dir / "MODEL_CARD.md", "\n".join(line for line in lines if line is not None))


def recorded_components(run_dir: Path) -> list[dict]:
    """The components env.json recorded (see :func:`environment`); none if it
    is missing, unreadable or from a run before they were recorded."""
    try:
        env = json.loads((run_dir / "env.json").read_text())
    except (OSError, ValueError):
        return []
    return env.get("components") or [] if isinstance(env, dict) else []
