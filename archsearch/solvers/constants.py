"""A program's free constants: the numbers the papers fixed by hand that a user may tune to his data.

Each program declares its constants beside its formulation (:data:`archsearch.solvers.deepmad.program.FREE_CONSTANTS`,
:data:`archsearch.solvers.nvit.FREE_CONSTANTS`, ...) and its solver names them in ``free_constants``; a
constant is a keyword of the solver's ``solve`` (one of its ``options``), so a tuned value is applied the
way a command-line option is. ``archsearch tune`` samples them in an Optuna study
(:meth:`FreeConstant.suggest`) and writes the best as a profile (:mod:`archsearch.solvers.profile`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from archsearch.errors import SpecError

__all__ = ["FreeConstant", "free_constants", "check_constants", "default_constants"]


@dataclasses.dataclass(frozen=True)
class FreeConstant:
    """One tunable constant of a program.

    Attributes:
        name: The ``solve`` keyword it sets.
        kind: ``float``, ``int`` or ``categorical``.
        low, high: The range (``float`` and ``int``); a tuned value lies in it.
        log: Sample on a log scale (a ratio, a weight spanning decades).
        choices: The values of a ``categorical`` constant (JSON scalars).
        default: The paper's value, from the space (a callable of the space) or fixed.
        doc: What it is and where the paper fixed it.
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    default: Any = None
    doc: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("float", "int", "categorical"):
            raise ValueError(f"FreeConstant {self.name}: kind {self.kind!r}")
        if self.kind == "categorical":
            if not self.choices:
                raise ValueError(f"FreeConstant {self.name}: a categorical constant needs choices")
        elif self.low is None or self.high is None or not self.low < self.high or (self.log and self.low <= 0):
            raise ValueError(f"FreeConstant {self.name}: bad range [{self.low}, {self.high}]")

    def default_for(self, space: Any) -> Any:
        """The paper's value in ``space``."""
        return self.default(space) if callable(self.default) else self.default

    def accepted(self) -> str:
        """The accepted values, for messages."""
        if self.kind == "categorical":
            return f"one of {list(self.choices)}"
        kind = "an integer" if self.kind == "int" else "a number"
        return f"{kind} in [{self.low:g}, {self.high:g}]"

    def check(self, value: Any, where: str) -> Any:
        """``value`` if it is accepted, else a one-line :class:`SpecError` naming ``where`` and the range."""
        if self.kind == "categorical":
            if isinstance(value, bool) is not any(isinstance(c, bool) for c in self.choices) or value not in self.choices:
                raise SpecError(f"{where}: expected {self.accepted()}, got {value!r}")
            return value
        ok_type = int if self.kind == "int" else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_type) or not math.isfinite(value) \
                or not (self.low <= value <= self.high):
            raise SpecError(f"{where}: expected {self.accepted()}, got {value!r}")
        return int(value) if self.kind == "int" else float(value)

    def suggest(self, trial: Any) -> Any:
        """The constant sampled in an Optuna trial."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)


def free_constants(space: Any) -> tuple[FreeConstant, ...]:
    """The free constants of the program that solves ``space`` (empty when it declares none)."""
    from archsearch.solvers.base import get_solver

    if not getattr(space, "solver", None):
        return ()
    if getattr(space, "score", None) == "madnas":
        # the DeepMAD reference's madnas score (deepmad-mbv2) has no rho bound and no depth penalty, and its one
        # stage weight only scales it: none of the DeepMAD program's constants changes which design it picks
        return ()
    return tuple(getattr(get_solver(space.solver), "free_constants", ()))


def default_constants(space: Any) -> dict[str, Any]:
    """The papers' values of the free constants in ``space``."""
    return {c.name: c.default_for(space) for c in free_constants(space)}


def check_constants(space: Any, values: dict[str, Any], where: Callable[[str], str] = lambda n: n) -> dict[str, Any]:
    """``values`` checked against the program's declared constants: an unknown name or a value out of range
    is a one-line :class:`SpecError` naming the field (``where(name)``) and what is accepted."""
    declared = {c.name: c for c in free_constants(space)}
    out = {}
    for name, value in values.items():
        if name not in declared:
            raise SpecError(f"{where(name)}: not a free constant of the program of space {space.name}; its constants: "
                            f"{sorted(declared)}")
        out[name] = declared[name].check(value, where(name))
    return out
