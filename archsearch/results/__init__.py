"""Tables and Pareto data computed from solve results (pandas; no torch, no matplotlib)."""

from archsearch.results.pareto import Direction, non_dominated
from archsearch.results.runs import COLUMNS, load_run, merge_runs

__all__ = ["COLUMNS", "Direction", "load_run", "merge_runs", "non_dominated"]
