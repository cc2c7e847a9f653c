"""The NViT redistribution program and its exact solver (outer loop over EMB, an integer program per EMB).

Program (:class:`NViTProgram`): given a :class:`~archsearch.space.nvit_templates.NViTSpace` and a
budget, choose EMB ``d`` on its grid and, for each of the ``L`` blocks, heads ``H``, query/key and
value widths per head ``qk``, ``v`` and MLP width ``m`` from the space's menus (restricted by the
priors when they are on) to maximise the score of :mod:`archsearch.objectives.nvit`

    S = sum_i w_i [ 2 log d + a_qk log qk_i + a_v log(H_i v_i) + a_mlp log m_i ]

subject to whole-model MACs and parameters (and peak activation memory) within the budget.

Structure the solver uses. For a fixed ``d`` (and fixed tokens ``N``) every cost is linear in the
per-block products: a block costs ``(2Nd + N^2)(H qk + H v) + 2Nd m`` MACs and
``2(d+1) H qk + (2d+1)(H v + m) + 6d`` parameters (:func:`archsearch.cost.vit_block_macs`), and
the score is separable. A block's attention choice ``(H, qk, v)`` and its MLP choice ``m`` are
independent items, and blocks of equal weight are interchangeable, so for each weight class of
``k`` blocks the program is a multiple-choice knapsack with integer counts: ``n_o >= 0`` blocks of
the class take option ``o``, ``sum_o n_o = k`` (one count vector for attention options, one for MLP
options). This aggregated integer program, free of the block symmetry, is solved exactly by HiGHS
(:func:`scipy.optimize.milp`); its LP relaxation bounds it from above.

Solver (:class:`NViTSolver`): the LP bound of every EMB on the grid, then the integer programs in
decreasing order of bound until the next bound cannot beat the ``top_k``-th design. The reported
``bound`` is the largest of the incumbent, the integer programs' dual bounds and the LP bounds of
the EMB values never solved: an upper bound over the whole discrete space. Memory budgets are exact
per-option filters (the peak is a maximum over the blocks' steps). A latency budget uses the space's
calibration (``archsearch calibrate``, :mod:`archsearch.cost.latency`): a block's predicted latency
is an attention part plus an MLP part, each linear in that item's option, so latency is one more
knapsack row, and the bound covers it.

Within a weight class the score and costs do not depend on which block takes which option; the
solver gives the wider options to the blocks nearer the middle of the network (a presentation
choice that never changes the score or the costs).

The package, one concept a file: :mod:`.menus` (an item's options at one EMB and their Pareto
filter), :mod:`.program` (the program: menus, costs, the aggregated integer program, its LP and
Lagrangian bounds), :mod:`.solver` (the best-first search over EMB) and :mod:`.brute_force`.
"""

from archsearch.solvers.nvit.brute_force import brute_force_nvit
from archsearch.solvers.nvit.menus import _pareto  # noqa: F401  (for the tests)
from archsearch.solvers.nvit.menus import Menu
from archsearch.solvers.nvit.program import FREE_CONSTANTS, EmbSolution, NViTProgram
from archsearch.solvers.nvit.solver import NViTSolver, smallest_nvit_costs, solve_nvit

__all__ = ["NViTProgram", "NViTSolver", "Menu", "EmbSolution", "solve_nvit", "brute_force_nvit", "FREE_CONSTANTS",
           "smallest_nvit_costs"]
