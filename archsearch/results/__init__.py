"""Tables and Pareto data computed from solve results (pandas; no torch, no matplotlib)."""

from archsearch.results.pareto import Direction, Front2D, front_2d, hypervolume_2d, non_dominated, pareto_ranks
from archsearch.results.runs import COLUMNS, load_run, merge_runs

__all__ = ["COLUMNS", "Direction", "Front2D", "front_2d", "hypervolume_2d", "load_run", "merge_runs", "non_dominated",
           "pareto_ranks"]
