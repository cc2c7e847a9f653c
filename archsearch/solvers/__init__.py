"""Solvers: formulations and backends; every solve returns a :class:`SolveResult`."""

from archsearch.solvers.base import (
    FEASIBLE, GAP_OPTIMAL, INFEASIBLE, OPTIMAL, STATUSES, BaseSolver, Candidate, SolveResult, SolverStats, get_solver,
    list_solvers, register_solver, relative_gap,
)
from archsearch.solvers.deepmad import DeepMADSolver, brute_force, smallest_costs, solve_deepmad
from archsearch.solvers.deepmad.program import DeepMADProgram, Design, Evaluation
from archsearch.solvers.nvit import NViTProgram, NViTSolver, brute_force_nvit, solve_nvit
from archsearch.solvers.stvit import STViTEvaluation, STViTSolver, evaluate_design, solve_stvit, stvit_designs
from archsearch.solvers.tinyvit import ContractionProgram, TinyViTContractionSolver, brute_force_contraction
from archsearch.solvers.mci import MCiSolver, brute_force_mci, solve_mci
from archsearch.solvers.revit import ReViTRuleSolver, revit_costs

__all__ = [
    "BaseSolver", "Candidate", "DeepMADProgram", "DeepMADSolver", "Design", "Evaluation", "FEASIBLE", "GAP_OPTIMAL",
    "INFEASIBLE", "NViTProgram", "NViTSolver", "OPTIMAL", "STATUSES", "SolveResult", "SolverStats", "brute_force",
    "brute_force_nvit", "get_solver", "list_solvers", "register_solver", "relative_gap", "smallest_costs",
    "solve_deepmad", "solve_nvit", "STViTEvaluation", "STViTSolver", "evaluate_design", "solve_stvit",
    "stvit_designs", "ContractionProgram", "TinyViTContractionSolver", "brute_force_contraction", "MCiSolver",
    "brute_force_mci", "solve_mci", "ReViTRuleSolver", "revit_costs",
]
