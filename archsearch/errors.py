"""Exception hierarchy: every error raised on user input is an :class:`ArchsearchError`.

Messages follow one shape: the field, the value received, what is accepted.
"""

from __future__ import annotations

import difflib
from typing import Iterable

__all__ = ["ArchsearchError", "SpecError", "BudgetError", "StorageError", "UnknownNameError", "did_you_mean"]


class ArchsearchError(Exception):
    """Base class of all archsearch errors; the CLI turns them into exit code 2."""


class SpecError(ArchsearchError, ValueError):
    """An architecture spec, search space or option has an invalid field."""


class BudgetError(ArchsearchError, ValueError):
    """A budget string or field is malformed."""


class StorageError(ArchsearchError):
    """A study storage cannot be used: an unknown URL scheme, a missing driver, a refused connection or
    login, a file that is not a study database. The message names the storage with its password masked."""


class UnknownNameError(ArchsearchError, KeyError):
    """A registry lookup failed; the message lists the registered names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """`` (did you mean 'deepmad-r50'?)`` naming the registered names closest to ``name``, or ``""``
    when none is close; for the messages of failed lookups, which then list every name."""
    names = [str(k) for k in known]
    text = str(name)
    close = difflib.get_close_matches(text, names, n=3, cutoff=0.6)
    close += [n for n in names if n not in close and text and (n.startswith(text) or text.lower() == n.lower())][:3 - len(close)]
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
