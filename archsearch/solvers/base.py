"""What every solve returns: status constants, candidates, bound, gap and timings."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from archsearch.errors import SpecError, UnknownNameError, did_you_mean
from archsearch.space.base import ArchSpec
from archsearch.space.budget import Budget

__all__ = [
    "OPTIMAL", "FEASIBLE", "INFEASIBLE", "UNSOLVED", "STATUSES", "GAP_OPTIMAL",
    "Candidate", "SolverStats", "SolveResult", "BaseSolver", "register_solver", "get_solver", "list_solvers", "relative_gap",
    "latency_provenance", "check_budget_keys",
]

OPTIMAL = "optimal"
FEASIBLE = "feasible"
INFEASIBLE = "infeasible"
UNSOLVED = "unsolved"  # stopped by a limit (time, nodes) before any feasible design was found
STATUSES = (OPTIMAL, FEASIBLE, INFEASIBLE, UNSOLVED)
GAP_OPTIMAL = 1e-3


def latency_provenance(budget: Budget, model: Any, *, covers_latency: bool = True) -> dict[str, Any]:
    """The stats entries of a solve under a latency budget: the budget keys its bound covers (``latency``
    last, when the program carries it) and the calibration (:class:`~archsearch.cost.latency.LatencyModel`) used."""
    covers = [k for k in ("macs", "params", "memory") if getattr(budget, k) is not None]
    return {"bound_covers": covers + (["latency"] if covers_latency else []), "latency_device": model.device,
            "latency_calibration": model.device_name}


def relative_gap(bound: float, score: float) -> float:
    """``(bound - score) / |bound|``, 0 when both are equal, inf without a finite bound."""
    if bound == score:
        return 0.0
    if not (abs(bound) < float("inf")) or bound == 0:
        return float("inf")
    return max(0.0, (bound - score) / abs(bound))


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One architecture a solve proposes.

    Attributes:
        spec: The architecture.
        score: The objective the solver maximised (DeepMAD: penalised entropy by default).
        macs: MACs counting what the space's budget counts (backbone or whole model).
        params: Parameters, same convention.
        rho: DeepMAD effectiveness; ``None`` for families without it.
        extra: Other figures (entropy, penalty, memory, ...).
    """

    spec: ArchSpec
    score: float
    macs: int
    params: int
    rho: float | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "score": self.score, "macs": int(self.macs), "params": int(self.params),
                "rho": self.rho, **({"extra": self.extra} if self.extra else {})}


@dataclasses.dataclass
class SolverStats:
    """Timings and counters of a solve."""

    solve_time_s: float = 0.0
    nodes: int = 0
    relaxations: int = 0
    evaluations: int = 0
    backend: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class SolveResult:
    """The result of a solve.

    Attributes:
        status: ``optimal`` (gap <= 1e-3), ``feasible``, ``infeasible``, or ``unsolved`` (a limit stopped
            the search before any feasible design was found; a ``feasible`` or ``optimal`` result without
            candidates is read as that).
        space: Name of the space solved.
        budget: The budget.
        candidates: Best first; the first one is the solver's answer.
        bound: Upper bound on the objective over the whole space (``inf`` when none is known).
        gap: ``(bound - score) / |bound|`` of the best candidate.
        stats: Timings and counters.
        smallest: For infeasible budgets, the smallest feasible costs of the space.
    """

    status: str
    space: str
    budget: Budget
    candidates: list[Candidate]
    bound: float
    gap: float
    stats: SolverStats
    smallest: dict[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status in (OPTIMAL, FEASIBLE) and not self.candidates:  # nothing found is not "feasible"
            self.status = UNSOLVED
        if self.status not in STATUSES:
            raise ValueError(f"SolveResult.status: expected one of {list(STATUSES)}, got {self.status!r}")

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``archsearch solve --format json`` prints."""
        finite = lambda v: v if abs(v) < float("inf") else None  # noqa: E731  (JSON has no inf)
        return {
            "status": self.status,
            "space": self.space,
            "budget": self.budget.to_dict(),
            "bound": finite(self.bound),
            "gap": finite(self.gap),
            "time_s": round(self.stats.solve_time_s, 6),
            "candidates": [c.to_dict() for c in self.candidates],
            # which budget keys the bound accounts for (solvers that say so), e.g. not a latency checked on designs only
            **({"bound_covers": list(self.stats.extra["bound_covers"])} if "bound_covers" in self.stats.extra else {}),
            # what ended the search (solvers that say so): the gap tolerance or a node budget (the same answer
            # on any machine), or a wall-clock limit (an answer that depends on the machine's speed)
            **({"stopped": self.stats.extra["stopped"]} if "stopped" in self.stats.extra else {}),
        }


class BaseSolver:
    """Base of solvers: a solver declares which families it solves and returns a :class:`SolveResult`.

    Protocol (what the CLI relies on): constructed as ``cls(gap_tol=..., time_limit=...)``; solved as
    ``solver.solve(space, budget, top_k=..., resolution=..., **options)`` where ``options`` are among
    the class's :attr:`options` (program-specific switches such as DeepMAD's ``rho0``).

    Attributes:
        name: Registry name (a space names its solver in ``space.solver``).
        families: Spec families whose spaces it solves.
        gives_bound: Whether results carry a finite upper bound.
        options: Keyword options of :meth:`solve` beyond ``top_k`` and ``resolution``.
        budget_keys: The budget keys its programs count (:func:`check_budget_keys`).
        cli_gap_tol: The gap at which the command line stops a solve unless ``--gap-tol`` says otherwise.
    """

    name: ClassVar[str] = ""
    families: ClassVar[tuple[str, ...]] = ()
    gives_bound: ClassVar[bool] = True
    options: ClassVar[tuple[str, ...]] = ()
    budget_keys: ClassVar[tuple[str, ...]] = ("macs", "params", "latency", "memory")
    cli_gap_tol: ClassVar[float] = GAP_OPTIMAL

    def __init__(self, *, gap_tol: float = GAP_OPTIMAL, time_limit: float = 30.0) -> None:
        """Args:
            gap_tol: Stop when ``(bound - score) / |bound|`` is at most this (exact solvers stop at 0).
            time_limit: Seconds a solve may take before it returns its best design and bound.
        """
        if not (isinstance(gap_tol, (int, float)) and 0 <= gap_tol < 1):
            raise SpecError(f"gap_tol: expected a number in [0, 1), got {gap_tol!r}")
        if not (isinstance(time_limit, (int, float)) and time_limit > 0):
            raise SpecError(f"time_limit: expected a positive number of seconds, got {time_limit!r}")
        self.gap_tol, self.time_limit = float(gap_tol), float(time_limit)

    def solve(self, space: Any, budget: Budget, **options: Any) -> SolveResult:
        raise NotImplementedError


def check_budget_keys(solver: type[BaseSolver], budget: Budget, space: str) -> None:
    """Refuses a budget key the solver's programs do not count, in one line naming it and the accepted keys."""
    for key, _ in budget.items():
        if key not in solver.budget_keys:
            raise SpecError(f"--budget: {key!r} is not counted by the {solver.name} solver (space {space}); it accepts "
                            f"{list(solver.budget_keys)}" + ("; 'flops' is the DeepMAD reference code's count, for deepmad-* "
                                                            "spaces" if key == "flops" else ""))


_SOLVERS: dict[str, type[BaseSolver]] = {}


def register_solver(cls: type[BaseSolver]) -> type[BaseSolver]:
    if not cls.name:
        raise ValueError("a solver class needs a name")
    if cls.name in _SOLVERS:
        raise ValueError(f"solver {cls.name!r} is already registered")
    _SOLVERS[cls.name] = cls
    return cls


def list_solvers() -> list[str]:
    return sorted(_SOLVERS)


def get_solver(name: str) -> type[BaseSolver]:
    if name not in _SOLVERS:
        raise UnknownNameError(f"solver {name!r} is not registered{did_you_mean(name, list_solvers())}; known solvers: {list_solvers()}")
    return _SOLVERS[name]

