"""Branch-and-bound solver of the DeepMAD program with conic relaxations.

Every node of the tree is a box: per superblock an integer range of depths, a set of kernels and a
range of inner widths, and a range for the stem and every superblock output width. Its relaxation
(:class:`_Relaxation`, one DPP-parametrised cvxpy problem re-solved per node) is a convex program
whose optimum bounds every design in the box from above:

* costs are posynomials in the log-widths for the first block of each superblock (one exponential cone
  per distinct monomial, shared by every budget row),
  and linear in the totals ``M_j`` of the repeated blocks' cost monomials, linked to the widths;
* rho <= rho0 is ``sum log(c k^2/g) >= N log(N/rho0)``;
* each stage product ``(log C_s + 2 log R_s) E_s`` is bounded by McCormick, with the entropy floor
  that rho implies (exact where rho binds);
* the repeated blocks' entropy ``D v`` through their log-width totals ``W = D (x, y, kappa)`` (McCormick
  over the box), which also price it: each cost monomial's total is at least the perspective
  ``D exp(w(W) / D)``; and by a jointly concave perspective form in the cost totals;
* kernel sets are relaxed to an interval of ``log k^2``; the depth penalty is convex and exact;
* a latency budget: the calibrated predictor (:mod:`archsearch.cost.latency`) is a non-negative
  combination of posynomial features, entered like the MACs row (terms a design may lack are left
  out, the MACs count unrounded channels where the predictor rounds them up to the calibration's
  channel block, and repeated blocks weigh their kxk MACs at the least weight over the space's
  kernels, so it never overestimates).

Only designs that beat the incumbent matter, which shrinks boxes without branching (both valid for
every such design, so the bound stays valid for the whole space):

* at the root, optimality-based bound tightening (:meth:`_Relaxation.tighten`): the min and max of every
  width and depth over the relaxation with its objective at least the incumbent's score;
* at every node, reduced costs (:meth:`_Relaxation.reduced_cost_box`): the duals of the active box
  bounds price how fast the relaxation falls when a bound moves, which cuts the part of the box that
  cannot reach the incumbent.

Branching splits the range whose relaxation error is largest at the node's solution: a stage width
(McCormick of the stage products), a depth or width of a superblock (McCormick of ``D v``), a depth
where the secant bound on ``D`` lets the repeated blocks' cost totals fall below ``D m(z)`` (that hidden
cost priced by the budget rows' duals, :meth:`_Relaxation.link_slack`), or a kernel set.

Candidates come from the fixed-structure relaxation rounded to the channel grid (the best of the
roundings around it, :meth:`_Search.round_box`), a greedy repair, a structure search over depths
and kernels and local search. Best-first search (with depth-first plunges until a first design is
found) stops when the best open bound is within ``gap_tol`` of the best design or at the time
limit: the reported ``bound`` is valid for the whole discrete space (a relaxation the backend
cannot solve is never pruned).

The package, one concept a file: :mod:`.program` (the exact program: scores, costs, validity),
:mod:`.box` (the branch-and-bound box), :mod:`.relaxation` (the convex relaxation's rows),
:mod:`.bounds` (a node's bound, pruning, reduced costs, tightening, branching slacks), :mod:`.incumbents`
(rounding, repair, local search), :mod:`.solver` (the branch and bound) and :mod:`.brute_force`.
"""

from archsearch.solvers.deepmad.bounds import UNSOLVED, _Relaxation  # noqa: F401
from archsearch.solvers.deepmad.box import _contains, _Node, _root  # noqa: F401
from archsearch.solvers.deepmad.brute_force import brute_force
from archsearch.solvers.deepmad.incumbents import _Search  # noqa: F401
from archsearch.solvers.deepmad.program import DeepMADProgram, Design, Evaluation
from archsearch.solvers.deepmad.solver import DeepMADSolver, smallest_costs, solve_deepmad

__all__ = ["DeepMADProgram", "DeepMADSolver", "Design", "Evaluation", "brute_force", "smallest_costs", "solve_deepmad"]
# the private names above (_Relaxation, _Search, _Node, _root, _contains, UNSOLVED) are for the tests
