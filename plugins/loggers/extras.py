"""The optional libraries behind the built-in loggers.

The loggers always register (``ft plugins`` lists them); the library is
looked for when a recipe turns a logger on (its ``build``, before anything
trains) and imported when the run starts. Either way a missing one is an
:class:`ft.FtError` that names the pip extra which brings it.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from ft.errors import FtError


def _missing(library: str, extra: str, logger: str, why: str = "is not installed") -> FtError:
    return FtError(f"logger {logger!r} needs the {library} package, which {why}",
                   where=f"[log] backends (logger {logger!r})",
                   hint=f'pip install "ftkit[{extra}]", or take {logger!r} out of [log] backends / --log')


def check_library(library: str, extra: str, logger: str) -> None:
    """Raise the :class:`FtError` naming ``pip install "ftkit[EXTRA]"`` if
    ``library`` is not installed (cheap: nothing is imported)."""
    if importlib.util.find_spec(library) is None:
        raise _missing(library, extra, logger)


def import_library(module: str, library: str, extra: str, logger: str) -> ModuleType:
    """``import module`` (which needs the package ``library``), or the
    :class:`FtError` naming the extra, with the import's own error."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise _missing(library, extra, logger, f"could not be imported ({exc})") from None
