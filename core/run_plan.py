"""Which run directory a run writes, decided before anything is built or written.

``ft run`` starts a fresh run (a new ``<root>/<recipe>-<time>/`` or an
empty ``output.dir``), resumes one from its last checkpoint, or, when
``--resume`` finds a run that was killed before its first checkpoint,
starts that run again from the beginning. Resuming compares the recipe and
the data files with what the run recorded (:mod:`ft.fingerprint`): a
difference that changes what is computed is refused here, naming the keys,
before a byte is written.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoint import latest_checkpoint
from .errors import FtError
from .fingerprint import SAFE_KEYS, data_files, describe, recipe_changes, unsafe
from .recipe import Recipe


@dataclass
class RunPlan:
    """Where the run goes and how it starts.

    ``how``: ``"fresh"``, ``"resume"`` (from the latest checkpoint) or
    ``"restart"`` (``--resume`` of a run that has no checkpoint yet).
    ``path`` is None for a fresh run under ``output.root``: its
    timestamped folder is named when it is created. ``changes`` are the
    safe recipe changes a resume brings (recorded in run.json).
    """

    path: Path | None
    how: str
    root: str = "runs"
    name: str = "run"
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    data_files: dict[str, str] = field(default_factory=dict)

    @property
    def resuming(self) -> bool:
        return self.how == "resume"


def plan_run_dir(recipe: Recipe, resume: bool | str | Path) -> RunPlan:
    """Rank 0's decision, read-only: nothing is created or written."""
    files = data_files(recipe.data.options)
    common = {"root": recipe.output.root, "name": recipe.name, "data_files": files}
    if isinstance(resume, (str, Path)) and not isinstance(resume, bool):
        path = Path(resume)
        _require_run(path, str(path))
    elif recipe.output.dir is not None:
        path = Path(recipe.output.dir)
        where = f"output.dir = {path}"
        if path.exists() and not path.is_dir():
            raise FtError("output.dir is a file, not a folder", where=where, hint="choose another output.dir")
        if not resume:
            if latest_checkpoint(path) is not None or (path / "summary.json").exists():
                raise FtError("the run directory already holds a run", where=where,
                              hint="pass --resume to continue it, or choose another output.dir")
            _require_writable(path, where)
            return RunPlan(path, "fresh", **common)
        _require_run(path, where)
    elif resume:
        path = latest_run_dir(recipe.output.root, recipe.name)
        if path is None:
            raise FtError(f"no earlier run of {recipe.name!r} under {recipe.output.root}/",
                          hint="start the run without --resume")
    else:
        _require_writable(Path(recipe.output.root), f"output.root = {recipe.output.root}")
        return RunPlan(None, "fresh", **common)
    changes = verify_resume(path, recipe, files)
    if latest_checkpoint(path) is not None:
        return RunPlan(path, "resume", changes=changes, **common)
    if (path / "summary.json").exists():
        raise FtError("the run finished and kept no checkpoint to resume from", where=str(path),
                      hint="evaluate or export it as it is, or start a new run without --resume")
    # killed before its first checkpoint: nothing of it can be kept, so it starts again from the beginning
    return RunPlan(path, "restart", changes=changes, **common)


def verify_resume(path: Path, recipe: Recipe, files: dict[str, str]) -> dict[str, tuple[Any, Any]]:
    """The safe changes ``recipe`` brings to the run at ``path``; raises if
    the recipe or the data differ in a way that changes what is computed."""
    recorded = _read_json(path / "run.json") or {}
    before = recorded.get("recipe")
    if before is None and (path / "recipe.toml").exists():  # a run from before run.json: its resolved recipe.toml
        before = tomllib.loads((path / "recipe.toml").read_text())
    if before is None:  # killed before it recorded anything: nothing to compare, it starts again
        return {}
    changes = recipe_changes(before, recipe.to_dict())
    refused = unsafe(changes)
    if refused:
        raise FtError(f"--resume with a different recipe: {describe(refused)}", where=str(path),
                      hint=f"resume with the recipe the run started with ({path / 'recipe.toml'}), or start a new "
                           f"run without --resume. A resume may change only: {', '.join(sorted(SAFE_KEYS))}")
    old_files = recorded.get("data_files")
    if old_files is not None:
        moved = sorted(k for k in old_files.keys() | files.keys() if old_files.get(k) != files.get(k))
        if moved:
            raise FtError("--resume with different data: the file(s) named by "
                          + ", ".join(f"data.{k}" for k in moved) + " changed since the run started",
                          where=str(path), hint="resume with the data the run started with, or start a new run")
    return changes


def latest_run_dir(root: str | Path, recipe_name: str) -> Path | None:
    """The newest run of a recipe under ``root`` (one that recorded its start)."""
    candidates = [p for p in Path(root).glob(f"{recipe_name}-*") if (p / "recipe.toml").exists()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def check_can_resume(path: Path) -> None:
    """Every rank reads the checkpoint it resumes from: it must see it."""
    if latest_checkpoint(path) is None:
        import socket

        raise FtError(f"this node ({socket.gethostname()}) cannot see the run's checkpoint", where=str(path),
                      hint="put output.root (or output.dir) on storage every node mounts at the same path "
                           "(see docs/distributed.md)")


def _require_run(path: Path, where: str) -> None:
    # a folder with only ft's lock was killed before it recorded its recipe: it starts again
    if not path.is_dir() or not any((path / name).exists() for name in ("recipe.toml", "checkpoints", ".lock")):
        raise FtError("no checkpoint to resume from: no run has started here", where=where,
                      hint="name a run directory ft wrote, or start the run without --resume")


def _require_writable(path: Path, where: str) -> None:
    """The nearest existing folder on the way to ``path`` must be writable."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise FtError(f"{probe} is a file, not a folder", where=where, hint="choose another output folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise FtError(f"cannot write to {probe} (permission denied)", where=where,
                      hint="choose an output folder you can write to (--set output.root=... or output.dir=...)")


def _read_json(path: Path) -> Any:
    import json

    try:
        return json.loads(path.read_text()) if path.exists() else None
    except ValueError:
        return None
