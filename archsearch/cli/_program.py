"""The solver a command line asks for: a space's registered solver, built with the command's stops and
progress, and the program options (``--rho``, ``--no-depth-penalty``, ``--entropy``, ``--no-priors``) it
accepts; shared by ``solve``, ``baseline``, ``sample``, ``show --space`` and ``search``."""

from __future__ import annotations

import argparse
from typing import Any

from archsearch.errors import SpecError

__all__ = ["design_options", "profile_constants", "program_options", "solver_for"]

# program-specific options: (solve keyword, CLI flag, value from args, whether the user set it)
_OPTIONS = (
    ("rho0", "--rho", lambda a: a.rho, lambda a: a.rho is not None),
    ("depth_penalty", "--no-depth-penalty", lambda a: not a.no_depth_penalty, lambda a: a.no_depth_penalty),
    ("entropy", "--entropy", lambda a: a.entropy, lambda a: a.entropy != "code"),
    ("priors", "--no-priors", lambda a: not a.no_priors, lambda a: a.no_priors),
)


def program_options(space: Any, args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The registered solver class of a space, and the program options of the command line it accepts
    (``--rho``, ``--no-depth-penalty``, ``--entropy``, ``--no-priors``); a given option it does not take is
    an error naming the solvers that do."""
    from archsearch.solvers import get_solver, list_solvers

    if not space.solver:
        raise SpecError(f"--space {space.name}: no solver is registered for the {space.family!r} family")
    cls = get_solver(space.solver)
    options = {}
    for key, flag, value, given in _OPTIONS:
        if key in cls.options:
            options[key] = value(args)
        elif given(args):
            users = sorted({n for n in list_solvers() if key in get_solver(n).options})
            raise SpecError(f"{flag}: not an option of {cls.name} (space {space.name}); it applies to the solvers {users}")
    if getattr(args, "profile", None):
        options.update(profile_constants(space, args))
    return cls, options


def profile_constants(space: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The constants of ``--profile`` (checked against the space's program), less those an explicit option of
    the command line sets (``--rho`` wins over the profile's ``rho0``); records the profile as
    ``args.profile_record`` for the run's ``candidates.json``."""
    from archsearch.solvers.profile import read_profile

    profile = read_profile(args.profile).check(space)
    given = {key for key, _, _, set_ in _OPTIONS if set_(args)}
    used = {k: v for k, v in profile.constants.items() if k not in given}
    args.profile_record = {"path": str(args.profile), "constants": used,
                           "overridden": sorted(set(profile.constants) - set(used)),
                           "study": profile.provenance.get("study"), "evidence": profile.evidence.get("objective"),
                           "value": profile.evidence.get("value")}
    return used


def solver_for(space: Any, args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The registered solver of a space, built with the stops and progress of the command line, and the
    program options it accepts."""
    import inspect

    cls, options = program_options(space, args)
    takes = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {}
    if getattr(args, "max_nodes", None) is not None:
        if "max_nodes" not in takes:
            raise SpecError(f"--max-nodes: the {cls.name} solver (space {space.name}) has no node limit")
        kwargs["max_nodes"] = args.max_nodes
    if args.time_limit is not None:
        kwargs["time_limit"] = args.time_limit
    if getattr(args, "progress_fn", None) is not None and "progress" in takes:
        kwargs["progress"] = args.progress_fn
    gap_tol = cls.cli_gap_tol if args.gap_tol is None else args.gap_tol
    return cls(gap_tol=gap_tol, **kwargs), options


def design_options(space: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The program options of the command line that the space's solver takes (scores of designs no solve
    produced are the solver's own)."""
    return program_options(space, args)[1]
