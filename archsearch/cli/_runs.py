"""Run directories as the CLI writes them: a run's default name, its provenance, and the two files
(``candidates.json``, ``pareto.csv``) that ``solve``, ``baseline`` and ``sample`` leave in ``--out``."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import re
import sys
from pathlib import Path
from typing import Any, Sequence

from archsearch import __version__
from archsearch.cli._checks import check_run_target
from archsearch.space.budget import Budget

__all__ = ["pareto_rows", "run_name", "save_run", "versions"]


def versions() -> dict[str, str]:
    """The versions of archsearch, Python and the numerical stack, for a run's provenance."""
    from importlib import metadata

    out = {"archsearch": __version__, "python": platform.python_version()}
    for name in ("numpy", "scipy", "cvxpy", "clarabel", "torch", "timm"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def run_name(space: str, budget: Budget) -> str:
    """A run's default name: ``deepmad-r50-macs4.13G-params25.55M`` (the space's alone for an empty budget)."""
    text = budget.to_text().replace("=", "").replace(",", "-")
    return re.sub(r"[^A-Za-z0-9._-]+", "", f"{space}-{text}") if text else space


def pareto_rows(candidates: Sequence[Any]) -> list[dict[str, Any]]:
    """``pareto.csv``'s rows of a run's candidates, each marked Pareto-optimal in score, MACs and params."""
    from archsearch.results import non_dominated

    rows = [{"name": c.spec.name, "score": c.score, "macs": c.macs, "params": c.params, "rho": c.rho} for c in candidates]
    marks = non_dominated(rows, {"score": "max", "macs": "min", "params": "min"})
    for row, mark in zip(rows, marks):
        row["pareto"] = mark
    return rows


def save_run(out: Path, record: dict[str, Any], rows: list[dict[str, Any]], *, name: str, args: argparse.Namespace,
             wall: float, provenance: dict[str, Any]) -> None:
    """Writes a run directory: ``candidates.json`` (``record`` with the run's name and provenance) and
    ``pareto.csv`` (``rows``, with the run's name first).

    A new directory appears whole or not at all; in an existing one each file is replaced atomically,
    ``candidates.json`` last. A directory holding another run is refused unless ``--overwrite``.
    """
    import pandas as pd

    from archsearch._files import atomic_write_text, new_directory
    from archsearch.study.storage import mask_command

    check_run_target(out, overwrite=getattr(args, "overwrite", False), new=record)
    record = {**record, "name": name, "provenance": {
        # the equivalent command line, however it was invoked (console script, python -m, main([...]) from a
        # notebook), passwords of storage URLs masked
        "command": mask_command(getattr(args, "argv", sys.argv[1:])),
        "versions": versions(),
        "seed": getattr(args, "seed", None),
        **provenance,
        "wall_time_s": round(wall, 3),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }}
    frame = pd.DataFrame(rows)
    frame.insert(0, "run", name)
    files = {"pareto.csv": frame.to_csv(index=False), "candidates.json": json.dumps(record, indent=2)}
    if out.exists():
        for file, text in files.items():  # candidates.json last: it is what makes the folder a run
            atomic_write_text(out / file, text)
        return
    with new_directory(out) as tmp:
        for file, text in files.items():
            (tmp / file).write_text(text, encoding="utf-8")
