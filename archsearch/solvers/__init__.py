"""Solvers: formulations and backends; every solve returns a :class:`SolveResult`."""

from archsearch.solvers.base import (
    FEASIBLE, GAP_OPTIMAL, INFEASIBLE, OPTIMAL, STATUSES, BaseSolver, Candidate, SolveResult, SolverStats, get_solver,
    list_solvers, register_solver, relative_gap,
)
from archsearch.solvers.deepmad import DeepMADSolver, brute_force, smallest_costs, solve_deepmad
from archsearch.solvers.deepmad_program import DeepMADProgram, Design, Evaluation
from archsearch.solvers.revit import ReViTRuleSolver, revit_costs

__all__ = [
    "BaseSolver", "Candidate", "DeepMADProgram", "DeepMADSolver", "Design", "Evaluation", "FEASIBLE", "GAP_OPTIMAL",
    "INFEASIBLE", "OPTIMAL", "STATUSES", "SolveResult", "SolverStats", "brute_force", "get_solver", "list_solvers",
    "register_solver", "relative_gap", "smallest_costs", "solve_deepmad", "ReViTRuleSolver", "revit_costs",
]
