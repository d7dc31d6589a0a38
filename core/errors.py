"""Errors meant for people.

An :class:`FtError` is a mistake the user can fix (a bad recipe key, a missing
file, an unknown plugin name). The CLI prints it without a traceback and exits
with code 2; ``--debug`` shows the traceback. Anything else is a bug in ftkit
or a plugin and keeps its traceback.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class FtError(Exception):
    """A user-fixable error: what was wrong, where, and what to do.

    ``where`` names the place (a file, ``file: dotted.key``, a plugin);
    ``hint`` says what to do about it.
    """

    #: set when every rank of a distributed run raises this same error (it is printed once)
    all_ranks: bool = False

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        if where is None and hint is None and message.startswith("Caught ") and "\nOriginal Traceback" in message:
            message = _raised_in_worker(message)
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(str(self))

    def __reduce__(self):
        # keeps where/hint when the error travels between ranks (pickled)
        return (_rebuild, (type(self), self.message, self.where, self.hint, self.all_ranks))

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


def _raised_in_worker(text: str) -> str:
    """A DataLoader worker's error comes back as ``Caught X in DataLoader
    worker ... Original Traceback ...``: keep what the worker's error said."""
    import re

    found = list(re.finditer(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*Error: ", text, flags=re.MULTILINE))
    return text[found[-1].end():].rstrip("\n") if found else text


def _rebuild(cls: type, message: str, where: str | None, hint: str | None, all_ranks: bool) -> FtError:
    error = cls(message, where=where, hint=hint)
    error.all_ranks = all_ranks
    return error


class RecipeError(FtError):
    """A recipe is invalid: names the file and dotted key."""


class PluginError(FtError):
    """A plugin failed to load or two plugins claim the same name."""


class DataError(FtError):
    """Input data is unreadable or inconsistent: names the file (and row)."""


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """Return a "did you mean" hint for ``word`` among ``choices``, or None."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    if choices and len(choices) <= 12:
        return "choose one of: " + ", ".join(choices)
    return None
