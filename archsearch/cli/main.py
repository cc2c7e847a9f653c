"""``archsearch``: the command line — the parser assembled from one module per command group, the
arguments checked before any work, and errors mapped to exit codes.

Exit codes: 0 success; 1 a verification found a difference; 2 bad input or an infeasible budget.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Sequence

from archsearch import __version__
from archsearch._threads import prefer_passive_wait
from archsearch.cli import (
    calibrate,
    designs,
    prune,
    report,
    search,
    show,
    solve,
    teacher,
    tune,
    validate,
)
from archsearch.cli._args import Parser, check_names, check_numbers, check_paths
from archsearch.cli._checks import preflight
from archsearch.cli._output import EXIT_USAGE, err
from archsearch.errors import ArchsearchError

__all__ = ["main", "build_parser"]


def _times_nothing(args: argparse.Namespace) -> bool:
    """Trains and times no latency: then the CPU thread pool may sleep when idle (archsearch._threads).
    Latency figures keep OpenMP's default spinning, which batch-1 timings need (sleeping threads made
    them 1.7-3.8x longer on an idle machine): calibrate, prune and worker (its study may time latency)
    keep it, and validate and search unless --no-latency."""
    return args.command in ("tune", "teacher") or (args.command in ("validate", "search") and args.no_latency)


# every subcommand's parser, in the order `archsearch --help` lists them
_COMMANDS = (
    solve.register_solve, designs.register_baseline, designs.register_sample, calibrate.register_calibrate,
    report.register_pareto, show.register_spaces, show.register_show, validate.register_validate,
    teacher.register_teacher, validate.register_results, search.register_search, search.register_worker,
    tune.register_tune,
    prune.register_prune, report.register_report,
)


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, with the command list's help column placed past the longest command name
    (argparse measures the commands 2 columns short, which put ``calibrate``'s summary on a line of its own)."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action._get_subactions():
                self._action_max_length = max(self._action_max_length,
                                              len(self._format_action_invocation(sub)) + self._current_indent + 2)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="archsearch", description="Optimization-driven architecture search for efficient vision models.",
                    formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"archsearch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _COMMANDS:
        register(sub)
    return parser


def _validate(args: argparse.Namespace) -> None:
    """Arguments checked before any work or heavy import: every number in its range, every registered
    name (space, dataset, recipe) and the budget's grammar (:mod:`archsearch.cli._args`)."""
    check_numbers(args)
    check_paths(args)
    check_names(args)


def _masked(text: Any) -> str:
    from archsearch.study.storage import mask_text

    return mask_text(str(text))


def main(argv: Sequence[str] | None = None) -> int:
    # torch warns "No CUDA runtime is found, using CUDA_HOME=..." when a CUDA toolkit is installed on a machine
    # without a GPU: about building C++ extensions, which archsearch never does, so never news to its user
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if _times_nothing(args):
        prefer_passive_wait()  # before the command imports torch
    try:
        _validate(args)
        preflight(args)  # every output path and the storage URL, before any work
        return args.func(args)
    except ArchsearchError as exc:
        err(f"error: {_masked(exc)}")
        return EXIT_USAGE
    except OSError as exc:
        if exc.filename is None or not exc.strerror:
            raise
        # the system refused a file (a full disk, a mount gone read-only) after the checks passed: one line
        err(f"error: {exc.filename}: {exc.strerror}" + (f" (-> {exc.filename2})" if exc.filename2 else ""))
        return EXIT_USAGE
    except Exception as exc:
        from archsearch.study.storage import is_storage_error

        if not is_storage_error(exc):
            raise
        # a database failing after it was opened (a server gone, a file damaged meanwhile): one line, no traceback
        err(f"error: storage: {_masked(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
