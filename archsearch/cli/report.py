"""``archsearch pareto`` and ``archsearch report``: the candidates of several runs merged into one Pareto
table (with their validated accuracies), and one self-contained HTML report of runs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from archsearch.cli._output import EXIT_OK, err, fmt, print_json, print_table, top1_text
from archsearch.errors import SpecError
from archsearch.space.budget import format_count

__all__ = ["cmd_pareto", "cmd_report", "register_pareto", "register_report"]


def register_pareto(sub: Any) -> None:
    p = sub.add_parser("pareto", help="merge the candidates of several runs (any families) into one Pareto table")
    p.add_argument("runs", nargs="+", help="run directories written by `solve --out` (or their candidates.json)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--out", help="also write the table to this CSV file")
    p.add_argument("--storage", help="Optuna storage URL of the validation studies, opened read-only (default: $ARCHSEARCH_STORAGE, "
                                     "else each run's study.db)")
    p.set_defaults(func=cmd_pareto)


def register_report(sub: Any) -> None:
    p = sub.add_parser("report", help="write one self-contained HTML report (plots, Pareto table, architectures, validation) of runs")
    p.add_argument("runs", nargs="+", help="run directories written by `solve --out` (or their candidates.json)")
    p.add_argument("-o", "--out", default="report.html", help="HTML file to write (default report.html)")
    p.add_argument("--title", help="page title (default: the run names)")
    p.add_argument("--storage", help="Optuna storage URL of the validation study, opened read-only (default: $ARCHSEARCH_STORAGE, "
                                     "else sqlite:///RUN_DIR/study.db)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="json: print the written path and size as JSON")
    p.set_defaults(func=cmd_report)


def cmd_pareto(args: argparse.Namespace) -> int:
    from archsearch.results import merge_runs
    from archsearch.results.runs import with_validation

    args.runs = _expand_runs(args.runs)
    frame = merge_runs(args.runs)
    frame = with_validation(frame, args.runs, storage=args.storage)
    validated = bool((frame["seeds"] > 0).any())
    if not validated:
        frame = frame.drop(columns=["top1", "top1_std", "seeds", "training"])
    if args.out:
        from archsearch._files import atomic_write_text

        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, frame.to_csv(index=False))
    if args.format == "json":
        print_json(json.loads(frame.to_json(orient="records")))
    elif args.format == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    else:
        rows = [(r.run, r.family, r.objective, r.name, fmt(r.score), format_count(r.macs), format_count(r.params),
                 *([top1_text(r) if r.seeds else "-"] if validated else []), "*" if r.pareto else "")
                for r in frame.itertuples()]
        print_table(f"{len(frame)} candidates from {frame['run'].nunique()} runs (whole-model costs)",
                    ["run", "family", "objective", "name", "score", "macs", "params",
                     *(["top1 % (seeds)"] if validated else []), "pareto"], rows,
                    caption="pareto: no candidate of the same objective scores higher at no more MACs and params"
                            + ("; top-1: mean ± std over seeds of the most complete training" if validated else ""))
    return EXIT_OK


def _expand_runs(paths: Sequence[str]) -> list[str]:
    """Run directories (or ``candidates.json`` files) from the command line: a directory that is no run
    stands for the runs below it (two levels, e.g. a study's ``BUDGET/KIND`` folders), and a file that
    is no run record is skipped with a note, so ``report STUDY/*`` works beside the study's own files."""
    runs: list[str] = []
    skipped: list[str] = []
    for text in paths:
        p = Path(text)
        if p.is_dir() and not (p / "candidates.json").is_file():
            below = sorted({c.parent for pattern in ("*/candidates.json", "*/*/candidates.json") for c in p.glob(pattern)})
            if not below:
                raise SpecError(f"run: {text} is neither a run directory nor a folder of runs (no candidates.json in it "
                                f"or two levels below)")
            runs.extend(str(b) for b in below)
        elif p.is_file() and p.name != "candidates.json" and p.suffix != ".json":
            skipped.append(text)
        else:
            runs.append(text)
    if skipped and runs:
        from archsearch.results import load_run

        for run in runs:  # a bad run is the one line of an error, never after a note
            load_run(run)
        err(f"note: skipped {len(skipped)} file(s) that are not runs: {', '.join(skipped[:3])}{' ...' if len(skipped) > 3 else ''}")
    elif skipped:
        raise SpecError(f"run: {skipped[0]} is not a run directory or candidates.json")
    return list(dict.fromkeys(runs))


def cmd_report(args: argparse.Namespace) -> int:
    from archsearch.report import write_report

    t0 = time.perf_counter()
    args.runs = _expand_runs(args.runs)
    path = write_report(args.runs, out=args.out, title=args.title, storage=args.storage)
    size = path.stat().st_size
    if args.format == "json":
        print_json({"path": str(path), "bytes": size, "runs": list(args.runs), "wall_time_s": round(time.perf_counter() - t0, 3)})
    else:
        err(f"wrote {path} ({size / 1024:.0f} KiB, self-contained: open it in a browser)")
    return EXIT_OK
