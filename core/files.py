"""The files ft writes and reads, done safely.

Writes go to a temporary name beside the target, are fsynced and renamed
into place, with the mode the umask gives (``mkstemp``/``mkdtemp`` would
make them private). JSON is strict: a non-finite number is written as
``null``. Reads of weights, training state and JSON that fail (a missing,
truncated or foreign file) raise an :class:`FtError` naming the file, with
advice that depends on where the file lies in a run directory.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from .errors import FtError


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, fsync, rename:
    readers never see half a file, and a crash leaves the old one. Written
    as given (no newline translation); the file's mode follows the umask,
    like any file a tool writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    """:func:`write_text_atomic` of strict JSON (a non-finite float becomes null)."""
    write_text_atomic(path, json.dumps(finite_or_none(data), indent=2, default=str, allow_nan=False))


def write_csv_atomic(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """:func:`write_text_atomic` of a CSV table, ``header`` first."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def save_figure(fig: Any, path: Path, dpi: int = 100) -> None:
    """Save a matplotlib figure beside ``path`` and rename it into place
    (its suffix picks the format), then close the figure."""
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)


def umask() -> int:
    """This process's umask."""
    try:  # read, not set: setting it even for a moment races with other threads creating files
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A fresh temporary folder in ``parent`` with the umask's mode (mkdtemp's is 0700)."""
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    os.chmod(tmp, 0o777 & ~umask())
    return tmp


def replace_dir(tmp: Path, target: Path) -> None:
    """Put the finished folder ``tmp`` at ``target``. A folder already there
    goes aside as ``.NAME.old-PID`` first and is removed last, so a kill at
    any moment leaves one whole folder (``RunDirectory.repair`` puts an
    aside one back)."""
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def finite_or_none(value: Any) -> Any:
    """Replace NaN/inf floats (at any depth) by None: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


# -- reading weights and state back, with errors a person can act on -------------


def read_safetensors(path: Path, what: str = "the weights", hint: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, on the CPU.

    A missing, truncated or foreign file is an :class:`FtError` naming the
    file and saying it is damaged; ``what`` names the file's role in the
    message ("the backbone weights"), ``hint`` replaces the default advice
    (which depends on where the file lies: a run's checkpoint, its ``best/``,
    an export). Plugins read local weight files through this too.
    """
    from safetensors.torch import load_file

    check_file(path, what, hint)
    try:
        return load_file(str(path))
    except Exception as exc:  # SafetensorError (header too large / too small / incomplete), OSError
        raise unreadable(path, what, "safetensors", exc, hint) from None


def read_state(path: Path, what: str = "the training state", hint: str | None = None) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``, with the
    errors of :func:`read_safetensors`: a truncated or foreign file (zip,
    pickle or end-of-file errors) is an :class:`FtError` naming the file."""
    check_file(path, what, hint)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError (zip archive), EOFError, KeyError on foreign bytes
        raise unreadable(path, what, "torch.save", exc, hint) from None


def recovery_hint(path: Path) -> str:
    """What to do about a damaged file, from where it lies in a run directory:
    a checkpoint (use an earlier one), ``best/`` (fall back to the latest
    checkpoint, or export again if the folder is an export), else replace it."""
    path = Path(path)
    for folder in (path, *path.parents):
        if folder.parent.name == "checkpoints":
            return _checkpoint_hint(folder.parent, exclude=folder.name)
        if folder.name == "best" and (folder.parent / "recipe.toml").exists():
            run = folder.parent
            if (run / "export.json").exists():
                try:
                    source = json.loads((run / "export.json").read_text()).get("source", "RUN_DIR")
                except (OSError, ValueError, AttributeError):
                    source = "RUN_DIR"
                return f"export the run again into a new folder: ft export {source} NEW_FOLDER"
            if not (run / "checkpoints" / "latest.json").exists():
                return "the run kept no checkpoint to fall back to: train the run again"
            return (f"move {folder} aside so that ft eval / predict / export use the run's latest checkpoint "
                    "instead, or train the run again")
    return "replace the file with a good copy (download or export it again)"


def _checkpoint_hint(root: Path, exclude: str | None = None) -> str:
    names = [p.name for p in checkpoint_dirs(root) if p.name != exclude]
    if not names:
        return "the run has no other checkpoint: start the run again without --resume"
    return (f"use an earlier checkpoint: write {{\"checkpoint\": \"{names[-1]}\"}} into {root / 'latest.json'} "
            f"(checkpoints there: {', '.join(names)}) and run again with --resume, or start again without --resume")


def checkpoint_dirs(root: Path) -> list[Path]:
    """The complete checkpoint folders under ``root``, oldest first."""
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.stat().st_mtime)


def check_file(path: Path, what: str, hint: str | None) -> None:
    """An FtError unless ``path`` is an existing file."""
    if path.is_dir():
        raise FtError(f"cannot read {what}: this is a folder, not a file", where=str(path),
                      hint=hint or "give the path of the file itself")
    if not path.exists():
        raise FtError(f"cannot read {what}: the file does not exist", where=str(path), hint=hint or recovery_hint(path))


def unreadable(path: Path, what: str, kind: str, exc: BaseException, hint: str | None) -> FtError:
    """The error for a file that exists but cannot be read as ``kind``."""
    return FtError(f"cannot read {what}: the file is damaged or is not a {kind} file ({reason(exc)})",
                   where=str(path), hint=hint or recovery_hint(path))


def reason(exc: BaseException) -> str:
    """The first line of an error, cut to its first sentence when long
    (torch's weights-only message goes on about unsafe loading)."""
    lines = str(exc).strip().splitlines()
    line = lines[0] if lines else ""
    if len(line) > 120:
        line = line.split(". ")[0]
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def read_json(path: Path, what: str, hint: str) -> Any:
    """A JSON file ft wrote, or an :class:`FtError` naming it (missing, or damaged)."""
    if not path.is_file():
        raise FtError(f"cannot read {what}: the file does not exist", where=str(path), hint=hint)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise FtError(f"cannot read {what}: the file is damaged (not JSON: {reason(exc)})", where=str(path),
                      hint=hint) from None
