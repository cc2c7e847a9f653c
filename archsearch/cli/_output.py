"""Rendering helpers for the CLI: rich tables on stdout, messages on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable, Sequence

from archsearch.space.budget import format_count

__all__ = ["print_json", "print_table", "err", "fmt"]


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def err(message: str) -> None:
    """One line on stderr."""
    sys.stderr.write(message.rstrip("\n").replace("\n", " ") + "\n")


def fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "-"
    if kind == "count":
        return format_count(value)
    if kind == "pct":
        return "inf" if value == float("inf") else f"{100 * value:.3f}%"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.2f}"
    return str(value)


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=caption)
    for col in columns:
        table.add_column(col, justify="right" if col not in ("name", "stage", "block", "status") else "left")
    for row in rows:
        table.add_row(*[str(c) for c in row])
    Console(width=max(100, Console().width)).print(table)
