"""Tables and Pareto data computed from solve results (pandas; no torch, no matplotlib)."""

from archsearch.results.pareto import Direction, non_dominated

__all__ = ["Direction", "non_dominated"]
