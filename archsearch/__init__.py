"""archsearch: optimization-driven neural architecture search for efficient vision models.

Heavy dependencies (torch, timm, cvxpy) are imported lazily by the subpackages that need them.
"""

from archsearch.errors import ArchsearchError, BudgetError, SpecError, UnknownNameError

__version__ = "0.1.0"

__all__ = ["ArchsearchError", "BudgetError", "SpecError", "UnknownNameError", "__version__"]
