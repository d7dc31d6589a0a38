"""What every case of the broken-input corpus is made of.

A :class:`Case` builds one broken input in a fresh folder (a :class:`Workspace`),
names the ``ft`` command line to run on it, the exit code a good ``ft`` gives,
and the words its message must contain. Words are chosen so that any good
message has them (the file name, the recipe key, "line 3"), not one phrasing;
a tuple of words means "any one of these". ``{name}`` in a word is filled from
``Workspace.names`` (the builder records the file names it made up).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Union

import tomli_w

Word = Union[str, tuple[str, ...]]

#: words for "this file is damaged"; a good message about a corrupt file says one of them
BROKEN = ("corrupt", "damaged", "unreadable", "cannot read", "can't read", "could not read", "cannot load",
          "could not load", "failed to read", "failed to load", "invalid", "truncated", "not valid", "malformed")
#: words for "this does not exist"
MISSING = ("not found", "missing", "does not exist", "no such", "not exist")
#: words for "this is empty"
EMPTY = ("empty", "no rows", "no data", "no records", "no examples", "no interactions", "nothing")


def line(n: int) -> tuple[str, ...]:
    """Where a bad row is: file line ``n`` (the header is line 1), which some
    messages count as data row ``n - 1`` and some call row ``n``."""
    return (f"line {n}", f"row {n - 1}", f"row {n}")


@dataclass
class FinishedRun:
    """The tiny finished toy run every run-directory case damages a copy of."""

    run_dir: Path
    recipe: Path  # the recipe the run was started from
    recipe_dict: dict
    data: Path  # its CSV of numbers


@dataclass
class Workspace:
    """A case's own folder and what its builder recorded."""

    root: Path
    finished: Callable[[], FinishedRun] | None = None
    names: dict[str, str] = field(default_factory=dict)
    state: dict = field(default_factory=dict)

    def path(self, relative: str) -> Path:
        return self.root / relative

    def write(self, relative: str, content: str | bytes) -> Path:
        """Write a file (folders made as needed); returns its path."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def recipe(self, recipe: dict, relative: str = "recipe.toml") -> str:
        """A recipe dict as a TOML file; returns its path as the CLI takes it."""
        return str(self.write(relative, tomli_w.dumps(recipe)))

    def run(self) -> FinishedRun:
        """The finished toy run (only for cases with ``needs_run``)."""
        if self.finished is None:
            raise RuntimeError("this case did not ask for the finished run (Case.needs_run)")
        return self.finished()

    def run_copy(self, relative: str = "damaged-run") -> Path:
        """A private copy of the finished run, to damage."""
        target = self.root / relative
        shutil.copytree(self.run().run_dir, target)
        self.names.setdefault("run", target.name)
        return target


Builder = Callable[[Workspace], list[str]]
#: an extra check after the command: returns what is wrong, or None
After = Callable[[Workspace], Union[str, None]]
#: returns why the case cannot run here, or None
SkipIf = Callable[[], Union[str, None]]


@dataclass(frozen=True)
class Case:
    """One broken input, the command to run on it and what a good ``ft`` does."""

    id: str
    build: Builder
    exit: int
    words: tuple[Word, ...]
    after: After | None = None
    needs_run: bool = False  # copies the finished toy run
    subprocess: bool = False  # needs a real entry-point plugin: runs `ft` as a process
    plugins: tuple[tuple[str, type], ...] = ()  # in-process plugins: (name, class of the plugin object)
    skip_if: SkipIf | None = None


# -- checks after the command ----------------------------------------------------------


def no_run_dir_under(relative: str) -> After:
    """The failed run left no run directory under ``relative`` (output.root)."""
    def check(ws: Workspace) -> str | None:
        root = ws.root / relative
        left = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        return f"run directory left behind under output.root: {left}" if left else None

    return check


def unchanged(key: str) -> After:
    """The file whose bytes the builder stashed in ``ws.state[key]`` = (path, bytes) is untouched."""
    def check(ws: Workspace) -> str | None:
        path, before = ws.state[key]
        if not Path(path).exists():
            return f"{path} was removed"
        return None if Path(path).read_bytes() == before else f"{path} was changed"

    return check


def keeps_checkpoint(relative: str) -> After:
    """The run directory still has a loadable checkpoint pointer and the checkpoint it names."""
    def check(ws: Workspace) -> str | None:
        pointer = ws.root / relative / "checkpoints" / "latest.json"
        if not pointer.exists():
            return f"no checkpoint kept in {relative} (no checkpoints/latest.json)"
        name = json.loads(pointer.read_text())["checkpoint"]
        return None if (pointer.parent / name).is_dir() else f"latest.json names {name}, which is missing"

    return check


def all_of(*checks: After) -> After:
    def check(ws: Workspace) -> str | None:
        for one in checks:
            problem = one(ws)
            if problem:
                return problem
        return None

    return check
