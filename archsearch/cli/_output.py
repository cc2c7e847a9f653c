"""What a command tells its caller: rich tables and JSON on stdout, messages on stderr, exit codes.

Exit codes: 0 success; 1 a verification found a difference; 2 bad input or an infeasible budget;
130 interrupted.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from archsearch.space.budget import format_count

__all__ = ["EXIT_OK", "EXIT_DIFF", "EXIT_USAGE", "print_json", "print_table", "print_results", "err", "fmt", "report_hint",
           "stderr_console", "top1_text", "training_text"]

EXIT_OK, EXIT_DIFF, EXIT_USAGE = 0, 1, 2


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


#: Columns that hold names (runs, candidates, spaces, objectives, budgets): printed whole, never cut or split.
NAME_COLUMNS = frozenset({"name", "run", "space", "objective", "design", "candidate", "budget", "model", "constant",
                          "family", "kind", "dataset", "recipe"})
_LEFT = NAME_COLUMNS | {"stage", "block", "status", "description", "default budget", "counts"}


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None) -> None:
    """A rich table on stdout that never cuts a name: name columns (:data:`NAME_COLUMNS`) are as wide as their
    longest cell, the other columns wrap (folding a long word, never an ellipsis) when the terminal is narrow;
    off a terminal the table takes the width it needs (a log keeps every row on one line)."""
    from rich.console import Console
    from rich.table import Table

    rows = [[str(c) for c in row] for row in rows]
    table = Table(title=title, caption=caption)
    least = 1  # the narrowest the table can be: whole names, every other column's longest word (at most 12), the borders
    for i, col in enumerate(columns):
        whole = col in NAME_COLUMNS
        cells = [r[i] for r in rows if i < len(r)]
        longest = max(map(len, cells), default=0)
        word = min(12, max((len(w) for c in cells for w in c.split()), default=0))
        width = max(longest, len(col)) if whole else word
        table.add_column(col, justify="left" if col in _LEFT else "right", overflow="fold", min_width=width, no_wrap=whole)
        least += width + 3
    for row in rows:
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:  # a file or a pipe: as wide as the table needs
        console = Console(width=max(100, _natural_width(table)))
    elif console.width < least:  # names longer than the terminal is wide: lines run over, nothing is cut
        console = Console(width=least)
    console.print(table)


def _natural_width(table: Any) -> int:
    """The width a rich table takes when nothing is wrapped."""
    from rich.console import Console

    probe = Console(width=10_000)
    return probe.measure(table).maximum


def stderr_console() -> Any:
    """A rich console on stderr (progress bars and live lines; stdout holds the results)."""
    from rich.console import Console

    return Console(stderr=True)


def report_hint(run: str | Path) -> None:
    """The one-line hint at the end of ``solve --out`` and ``validate`` (stderr, never in JSON stdout)."""
    err(f"report: archsearch report {shlex.quote(str(run))} -o {shlex.quote(str(Path(run) / 'report.html'))}")


def top1_text(r: Any) -> str:
    """``71.20`` or, over several seeds, ``71.20 ± 0.31 (3)`` (top-1 in %)."""
    std = getattr(r, "top1_std", float("nan"))
    n = int(getattr(r, "seeds", 1) or 1)
    if n > 1:
        return f"{100 * r.top1:.2f} ± {100 * std:.2f} ({n})"
    return f"{100 * r.top1:.2f}"


def training_text(r: Any) -> str:
    """``8 ep`` or ``1 ep x 20 b`` (a smoke run)."""
    epochs = getattr(r, "epochs", None)
    mb = getattr(r, "max_batches", None)
    text = "-" if epochs is None or epochs != epochs else f"{int(epochs)} ep"
    if mb is not None and mb == mb:
        text += f" x {int(mb)} b"
    return text


def print_results(frame: Any, title: str, *, caption: str | None = None, status: bool = False) -> None:
    """The table of validated candidates (``validate``, ``results``, ``search``)."""
    columns = ["name", "kind", "dataset", "recipe", "training", "top1 % (seeds)", "top5 %", "macs", "params", "latency ms",
               "train s"]
    rows = []
    for r in frame.itertuples():
        row = [r.name, getattr(r, "kind", None) or "-", r.dataset, r.recipe, training_text(r), top1_text(r),
               f"{100 * r.top5:.2f}", format_count(r.macs), format_count(r.params),
               "-" if r.latency_ms is None or r.latency_ms != r.latency_ms else f"{r.latency_ms:.2f}", f"{r.train_time_s:.1f}"]
        rows.append(row + ([r.status] if status else []) + ["*" if r.pareto else ""])
    print_table(title, columns + (["status"] if status else []) + ["pareto"], rows, caption=caption)
