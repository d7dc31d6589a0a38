"""What a run was made from, so ``--resume`` can refuse a different recipe or data.

A run records its resolved recipe and a fingerprint of every data file
its ``[data]`` options name (``run.json``). ``--resume`` compares: keys
that only change how long or how visibly the run goes on (:data:`SAFE_KEYS`:
more epochs, a later time limit, loader workers) may differ and are
recorded; any other difference is refused before anything is written,
naming the keys.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

#: recipe keys a resumed run may change: they decide when it stops or how it
#: reports, never what one step computes
SAFE_KEYS = frozenset({
    "train.epochs", "train.max_steps", "train.time_limit", "train.patience", "train.checkpoint",
    "train.keep_checkpoints", "train.log_every", "train.progress", "train.num_workers",
    "train.persistent_workers", "train.prefetch_factor", "train.eval_batch_size", "train.device",
})
#: keys that name where the run lives, who records it or what a sweep would search, not what it is
IGNORED_PREFIXES = ("output.", "log.", "sweep.")

_HASH_WHOLE = 64 << 20  # files up to this size are hashed whole, larger ones by size and their ends
_DIR_ENTRIES = 200_000  # a folder is fingerprinted by the names and sizes of at most this many files


def flatten(recipe: dict, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"epochs": 3}}`` -> ``{"train.epochs": 3}``."""
    out: dict[str, Any] = {}
    for key, value in recipe.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def recipe_changes(before: dict, after: dict) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (before, after) for every key whose value differs
    (``output.*``, ``log.*`` and ``sweep.*`` excluded; a key present on one side only counts)."""
    old, new = flatten(before), flatten(after)
    return {key: (old.get(key), new.get(key)) for key in sorted(old.keys() | new.keys())
            if not key.startswith(IGNORED_PREFIXES) and old.get(key) != new.get(key)}


def unsafe(changes: dict[str, tuple[Any, Any]]) -> dict[str, tuple[Any, Any]]:
    """The changes a resumed run must refuse."""
    return {k: v for k, v in changes.items() if k not in SAFE_KEYS}


def data_files(options: Any) -> dict[str, str]:
    """Option name -> fingerprint of the file or folder it names, for every
    path-valued option (lists included). Content, not times: a dataset
    copied to another machine keeps its fingerprint."""
    values = options.model_dump() if hasattr(options, "model_dump") else dict(options)
    out: dict[str, str] = {}
    for name, value in values.items():
        paths = value if isinstance(value, (list, tuple)) else [value]
        for i, path in enumerate(paths):
            if isinstance(path, Path):
                out[name if len(paths) == 1 else f"{name}[{i}]"] = path_fingerprint(path)
    return out


def path_fingerprint(path: Path) -> str:
    """``sha256:...`` of a file's bytes (its size and first and last MiB
    when large), or of a folder's relative file names and sizes."""
    digest = hashlib.sha256()
    if path.is_file():
        size = path.stat().st_size
        digest.update(str(size).encode())
        with path.open("rb") as fh:
            if size <= _HASH_WHOLE:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            else:
                digest.update(fh.read(1 << 20))
                fh.seek(-(1 << 20), os.SEEK_END)
                digest.update(fh.read())
        return f"file:{digest.hexdigest()[:32]}"
    if path.is_dir():
        entries = []
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = Path(root) / name
                entries.append(f"{full.relative_to(path)}\t{full.stat().st_size}")
                if len(entries) >= _DIR_ENTRIES:
                    break
        digest.update("\n".join(entries).encode())
        return f"dir:{len(entries)}:{digest.hexdigest()[:32]}"
    return "missing"


def describe(changes: dict[str, tuple[Any, Any]]) -> str:
    """``train.epochs 10 -> 20, optim.lr 0.001 -> 0.5``."""
    return ", ".join(f"{key} {_short(a)} -> {_short(b)}" for key, (a, b) in changes.items())


def _short(value: Any) -> str:
    text = "(unset)" if value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
