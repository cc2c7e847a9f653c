"""The command line (``archsearch``); nothing imports it.

:mod:`archsearch.cli.main` assembles the parser, checks the arguments and maps errors to exit codes;
each command group is one module that registers its subparsers and holds its handlers: ``solve``,
``designs`` (baseline, sample), ``calibrate``, ``show`` (spaces, show), ``validate`` (validate,
results), ``teacher``, ``search`` (search, worker), ``prune`` and ``report`` (pareto, report). Shared:
``_args`` (argument checks), ``_checks`` (output paths, run targets), ``_output`` (tables, messages,
exit codes), ``_program`` (a space's solver and program options) and ``_runs`` (run directories).
"""

from archsearch.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
