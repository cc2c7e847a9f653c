"""Exception hierarchy: every error raised on user input is an :class:`ArchsearchError`.

Messages follow one shape: the field, the value received, what is accepted.
"""

from __future__ import annotations

__all__ = ["ArchsearchError", "SpecError", "BudgetError", "UnknownNameError"]


class ArchsearchError(Exception):
    """Base class of all archsearch errors; the CLI turns them into exit code 2."""


class SpecError(ArchsearchError, ValueError):
    """An architecture spec, search space or option has an invalid field."""


class BudgetError(ArchsearchError, ValueError):
    """A budget string or field is malformed."""


class UnknownNameError(ArchsearchError, KeyError):
    """A registry lookup failed; the message lists the registered names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
