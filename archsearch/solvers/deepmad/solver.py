"""The DeepMAD branch and bound (:class:`DeepMADSolver`), and the smallest costs of a space.

A structure search over depths and kernels finds the first designs; the root box is tightened against
them; best-first search (depth-first plunges until a first design) branches on the range whose relaxation
error is largest at the node's solution until the certified gap is 1 %, then on depths and kernels first,
tightening every structure's box as the root's (:data:`PROOF_GAP`), and stops at ``gap_tol``, ``max_nodes``
or an optional wall-clock cap. The reported bound is valid for the whole discrete space.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from typing import Any, Callable, Literal

import numpy as np
from archsearch.errors import SpecError
from archsearch.solvers.base import (
    FEASIBLE,
    GAP_OPTIMAL,
    INFEASIBLE,
    OPTIMAL,
    BaseSolver,
    Candidate,
    SolveResult,
    SolverStats,
    latency_provenance,
    register_solver,
    relative_gap,
)
from archsearch.solvers.base import (
    UNSOLVED as NO_DESIGN,  # the status; UNSOLVED is a relaxation's
)
from archsearch.solvers.deepmad.bounds import UNSOLVED, _Relaxation
from archsearch.solvers.deepmad.box import _Node, _root
from archsearch.solvers.deepmad.incumbents import _Search
from archsearch.solvers.deepmad.program import FREE_CONSTANTS, DeepMADProgram, Design
from archsearch.space.budget import Budget
from archsearch.space.search_space import SearchSpace


#: The heuristics realise a structure (depths, kernels) from its relaxation solved this fraction inside every
#: budget and rho0 (:meth:`_Relaxation.solve`'s ``shade``): the unshaded optimum sits on the budgets' and rho's
#: edges, where rounding its widths to the grid breaks one of them and the greedy repair then gives up a layer
#: (R50's best structure (1, 1, 20, 20, 14): no design from the unshaded solve, 51 995 from the shaded one)
HEURISTIC_SHADE = 1e-3
#: ... and does so when the unshaded solve's design falls more than this fraction below its relaxation value
SHADE_WHEN = 5e-3
#: Once the certified gap is at most this, the search proves rather than explores: it splits a box's depths (the
#: widest range at its middle), then its kernels, before any width, and tightens the box of every structure
#: (depths and kernels fixed) the first time it meets one, as the root is tightened (:meth:`_Relaxation.tighten`
#: against the incumbent). A structure's relaxation over the root's widths lies up to ~0.3 % above its best
#: design, and reduced costs alone narrow its widths slowly; its own tightening closes most of that at once. R50
#: to a 0.1 % gap: 748 nodes and ~15 s of CPU (before: 0.17 % after 8 000 nodes and 52 s); R34 650 nodes. Before
#: this gap the search splits whatever its relaxation overestimates most (the 1 % gap sooner: R18 382 nodes
#: against 472 when depths come first), so a solve that stops at 1 % is unchanged
PROOF_GAP = 1e-2


@register_solver
class DeepMADSolver(BaseSolver):
    """Best-first branch and bound with GP relaxations (see the module docstring).

    Capabilities: CNN spaces; MACs, params and activation-memory budgets; gives a bound.
    """

    name = "deepmad-bnb"
    families = ("cnn",)
    gives_bound = True
    options = ("rho0", "depth_penalty", "entropy", "last_stage_weight", "penalty_weight")
    budget_keys = ("macs", "params", "latency", "memory", "flops")
    free_constants = FREE_CONSTANTS
    # the command line's default stop: a certified 1 % gap (R50: the whole call 2.2-2.3 s; a 0.1 % tolerance
    # certifies 0.06 % in 748 nodes, 15 s of CPU, and finds 52 043 against 52 018; R34 0.09 % in 650 nodes with
    # the same design; R18 runs the 1 000 default nodes to 0.64 % and a design 0.05 % better); the library's
    # default stays 0.1 %
    cli_gap_tol = 1e-2

    def __init__(self, *, gap_tol: float = GAP_OPTIMAL, time_limit: float | None = None, max_nodes: int = 1000,
                 backend: str | None = "CLARABEL", verbose: bool = False, polish_share: float = 0.1,
                 structure_share: float = 0.3, structure_solves: int = 100,
                 progress: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Args:
            gap_tol: Stop when the certified gap is at most this.
            time_limit: Optional wall-clock cap in seconds (default none). Without it every stop is a count
                (the gap tolerance, ``max_nodes``, ``structure_solves``), so the same call gives the same
                answer on any machine and under any load; with it, the answer depends on the machine's
                speed, and the result says so when the cap is what stopped it.
            max_nodes: Branch-and-bound nodes before the search returns its best design and bound.
            structure_solves: Relaxations the initial structure search (depths and kernels) may solve (100: at
                R18, R34, R50, R50-plus and MBV2-plus as good as 300 or better, and 2 s sooner).
            polish_share, structure_share: With a ``time_limit``: its shares kept for the final polish
                and given to the structure search.
            progress: Called with ``{"phase", "nodes", "open", "score", "bound", "gap", "elapsed_s"}`` when a
                phase starts and after every node of the search (the caller throttles its output).
        """
        super().__init__(gap_tol=gap_tol, time_limit=1.0 if time_limit is None else time_limit)
        if time_limit is None:
            self.time_limit = math.inf
        if not (isinstance(max_nodes, int) and max_nodes >= 1):
            raise SpecError(f"max_nodes: expected an integer >= 1, got {max_nodes!r}")
        if not (isinstance(structure_solves, int) and structure_solves >= 0):
            raise SpecError(f"structure_solves: expected an integer >= 0, got {structure_solves!r}")
        self.verbose = verbose
        self.polish_share = polish_share
        self.structure_share = structure_share
        self.structure_solves = structure_solves
        self.progress = progress
        self.max_nodes, self.backend = max_nodes, backend

    def solve(self, space: SearchSpace, budget: Budget, *, top_k: int = 5, rho0: float | None = None,
              resolution: int | None = None, depth_penalty: bool = True,
              entropy: Literal["code", "paper"] = "code", last_stage_weight: float | None = None,
              penalty_weight: float | None = None) -> SolveResult:
        t0 = time.perf_counter()
        prog = DeepMADProgram(space, budget, rho0=rho0, resolution=resolution, depth_penalty=depth_penalty, entropy=entropy,
                              last_stage_weight=last_stage_weight, penalty_weight=penalty_weight)

        def report(phase: str, bound: float = math.inf, open_nodes: int = 0) -> None:
            if self.progress is not None:
                score = search.best[1].score if search.best else None
                self.progress({"phase": phase, "nodes": nodes, "open": open_nodes, "score": score,
                               "bound": bound if math.isfinite(bound) else None,
                               "gap": relative_gap(bound, score) if score is not None and math.isfinite(bound) else None,
                               "elapsed_s": time.perf_counter() - t0})

        nodes = 0
        search = _Search(prog, top_k)
        report("relaxation")
        relax = _Relaxation(prog, self.backend)
        sp, n = space, prog.n

        heap: list[tuple[float, int, _Node, list[_Node]]] = []
        stats_unsolved = [0]
        stage_vars = [0 if end < 0 else 1 + end for end in prog.ends]
        counter = itertools.count()
        tried: dict[tuple[tuple[int, ...], tuple[int, ...]], float] = {}  # structure -> width-box size realised at
        # a node's structure is realised when the node is expanded, not when it is solved: the search never
        # expands about half the nodes it solves, and their realisations found nothing it needed (R50's 1 %
        # gap: 186 -> 167 relaxations; 1 000 nodes: 3-14 % fewer relaxations in every template space, and
        # better designs at R18, unpenalised R50 and R50-plus). A solved node's relaxed solution is still
        # rounded to the grid and evaluated (no solve): a tiny space's optimum in a node the search never
        # expands is found that way. heap entry id -> (box, relaxed solution, relaxed depths)
        unrealised: dict[int, tuple[_Node, np.ndarray, np.ndarray]] = {}
        proving = False  # past PROOF_GAP: structures first, each structure's box tightened once
        tightened: set[tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]] = set()

        def push(node: _Node, parent_ub: float = math.inf) -> None:
            nonlocal nodes
            nodes += 1
            res = relax.solve(node)
            if res is None:  # proven infeasible
                return
            ub = min(res[0], parent_ub)
            inc = search.best[1].score if search.best else -math.inf
            if math.isfinite(ub) and ub <= inc + 1e-9 * abs(ub):  # an unsolved root (ub = inf) is never pruned
                return
            if (proving and res is not UNSOLVED and node.lo == node.hi and all(len(k) == 1 for k in node.kernels)
                    and (node.lo, node.kernels) not in tightened):
                # a structure met for the first time in the proof phase: its box tightened as the root's, against
                # the incumbent (every design that beats it stays inside)
                tightened.add((node.lo, node.kernels))
                smaller = relax.tighten(node, inc)
                if smaller is None:
                    return
                if smaller != node:
                    node, res = smaller, relax.solve(smaller)
                    if res is None:
                        return
                    if res is not UNSOLVED:  # (unsolved: the larger box's bound stands, as below)
                        ub = min(ub, res[0])
                        if ub <= inc + 1e-9 * abs(ub):
                            return
            if res is UNSOLVED:  # keep the parent's bound; split the widest range blindly
                stats_unsolved[0] += 1
                pending = None  # no relaxed solution to realise
                children = self._split_widest(node, prog.m)
                if not children:  # a box of one design: its exact score stands in for the missing bound
                    search.evaluate(Design(node.wlo[0], node.wlo[1:], node.blo, tuple(k[0] for k in node.kernels), node.lo))
                    return
            else:
                # shrink the box around the designs that can still beat the incumbent (reduced costs); the
                # node keeps its bound and branches the smaller box from its solution, whose children are
                # solved when pushed (solving the smaller box again cost a relaxation at every other node:
                # the 1 % gap of R18, R34 and R50 took 9 % more CPU with it, in about as many nodes)
                smaller = relax.reduced_cost_box(node, res[0], inc) if search.best is not None else node
                if smaller is None:
                    return
                node = smaller
                children = self._branch(prog, relax, node, res[1], stage_vars, structure_first=proving)  # reads the last solve
                pending = (node, res[1], relax.depths())
                search.evaluate(search.round(res[1], node, pending[2]))
            entry_id = next(counter)
            if pending is not None:
                unrealised[entry_id] = pending
            heapq.heappush(heap, (-ub, entry_id, node, children))

        root = _root(prog)
        relax.bound_entropy(root)
        push(root)
        # a strong incumbent early: local search over (depths, kernels), each point realised by its
        # fixed-structure relaxation (tight) floored to the grid
        root_res = relax.solve(root)
        report("structure search")
        if root_res is not None and root_res is not UNSOLVED:
            start = search.best[0] if search.best is not None else self._start(search, root, root_res[1], relax.depths())
            self._structure_search(prog, relax, search, root, start, t0 + self.structure_share * self.time_limit,
                                   self.structure_solves)
        if search.best is not None:
            report("bound tightening")
            # only designs that beat the incumbent matter: shrink the root box around them (valid
            # bound tightening), then bound the stage entropies over the smaller box
            tight = relax.tighten(root, search.best[1].score, deadline=t0 + 0.5 * self.time_limit)
            heap.clear()
            unrealised.clear()
            if tight is not None:
                relax.bound_entropy(tight, search.best[1].score)
                push(tight)
        bound = -math.inf
        expanded: set[int] = set()
        plunge: tuple[float, int, _Node, list[_Node]] | None = None
        plunge_depth = 0
        search_time = self.time_limit * (1.0 - self.polish_share)
        stopped = "gap"
        while True:
            while heap and heap[0][1] in expanded:  # lazily drop entries a plunge already expanded
                heapq.heappop(heap)
            if not heap:
                bound = search.best[1].score if search.best else -math.inf
                break
            bound = -heap[0][0]
            inc = search.best[1].score if search.best else -math.inf
            report("branch and bound", bound, len(heap))
            if self.verbose and nodes % 200 < n + 2:
                print(f"nodes {nodes} open {len(heap)} bound {bound:.1f} best {inc:.1f} t {time.perf_counter() - t0:.1f}", flush=True)
            if relative_gap(bound, inc) <= self.gap_tol:
                break
            proving = proving or relative_gap(bound, inc) <= PROOF_GAP
            # the time limit does not stop the search before a first feasible design (up to 10x)
            elapsed = time.perf_counter() - t0
            if nodes >= self.max_nodes:
                stopped = "nodes"
                break
            if (elapsed > search_time and search.best is not None) or elapsed > 10 * self.time_limit:
                stopped = "time_limit"
                break
            # best-first; until a first feasible design exists, depth-first plunges reach leaves (where
            # candidates are) early. Once there is one, plunges only slow the bound down (R50, 1000
            # nodes: gap 1.06 % with plunges, 0.66 % without)
            entry = plunge if plunge is not None else heapq.heappop(heap)
            expanded.add(entry[1])
            plunge = None
            if -entry[0] <= inc:
                continue
            pending = unrealised.pop(entry[1], None)
            if pending is not None:
                self._incumbent(prog, relax, search, *pending, tried)
                inc = search.best[1].score if search.best else -math.inf
                if -entry[0] <= inc:
                    continue
            before = len(heap)
            for child in entry[3]:
                push(child, -entry[0])
            kids = [e for e in heap[before:]] if len(heap) > before else []
            if kids and plunge_depth < 40 and search.best is None:
                plunge = max(kids, key=lambda e: -e[0])
                plunge_depth += 1
            else:
                plunge_depth = 0 if nodes % 4 == 0 else 40  # plunge again after a few best-first steps
        # realise the structures the best open nodes point at, then polish the best designs with pair
        # moves in the remaining time
        report("polish", bound, len(heap))
        deadline = t0 + self.time_limit
        for _, _, node, _ in heapq.nsmallest(5, heap):
            if time.perf_counter() > deadline:
                break
            res = relax.solve(node)
            if res is not None and res is not UNSOLVED:
                self._incumbent(prog, relax, search, node, res[1], relax.depths(), tried)
        for d, _ in search.top(3):
            if time.perf_counter() > deadline:
                break
            search.pair_polish(d, deadline)
        elapsed = time.perf_counter() - t0
        stats = SolverStats(solve_time_s=elapsed, nodes=nodes, relaxations=relax.solves, evaluations=search.evaluations,
                            backend=f"{self.name}/{self.backend}", extra={
                                "unsolved_relaxations": stats_unsolved[0], "stopped": stopped,
                                # with a latency budget: the relaxation carries the predictor as one more
                                # posynomial row, so the bound covers latency as well as the other budgets
                                **(latency_provenance(budget, prog.latency_model, covers_latency=relax.covers_latency)
                                   if prog.latency_model is not None else {})})
        if search.best is None:
            if heap:  # stopped early with open nodes and nothing feasible yet
                return SolveResult(NO_DESIGN, sp.name, budget, [], bound, math.inf, stats)
            smallest = smallest_costs(space, budget, rho0=prog.rho0, resolution=prog.resolution)
            return SolveResult(INFEASIBLE, sp.name, budget, [], -math.inf, math.inf, stats, smallest)
        best_score = search.best[1].score
        bound = max(bound, best_score)
        gap = relative_gap(bound, best_score)
        status = OPTIMAL if gap <= GAP_OPTIMAL else FEASIBLE
        cands = []
        for rank, (d, ev) in enumerate(search.top(top_k)):
            spec = prog.to_spec(d, name=f"{sp.name}-{rank + 1}")
            cands.append(Candidate(spec, ev.score, ev.macs, ev.params, ev.rho,
                                   {"entropy": ev.entropy, "penalty": ev.penalty, "memory": ev.memory,
                                    **({"latency_ms": ev.latency} if prog.latency_model is not None else {}),
                                    **({"flops": ev.flops} if budget.flops is not None else {})}))
        return SolveResult(status, sp.name, budget, cands, bound, gap, stats)

    @staticmethod
    def _start(search: "_Search", root: _Node, z: np.ndarray, depths: np.ndarray) -> Design:
        """The structure search's first design, from the root relaxation's solution ``z``: its depths rounded
        down (rounded to the nearest, R50's (1, 1, 20, 20, 17) has no design; the best has (1, 1, 20, 20, 14))
        and its kernels rounded up. R18's root puts the last superblock's kernel nearer 3 than 5; from there the
        search never left kernel 3, where (1, 1, 14, 15, 11), the depths of its best design (all 5x5), has
        no design at all. Measured, depths down and kernels up: R34 and the -plus spaces reach a 1 % gap in a
        third to a fifth of the nodes, R50 in 122 instead of 130, R18 in as many (docs/benchmarks.md, "Speed")."""
        n = search.prog.n
        start = search.round(z, root, np.floor(depths + 1e-6))
        kappa = z[1 + 2 * n:]
        return start._replace(k=tuple(min((k for k in kk if 2 * math.log(k) >= kappa[i] - 1e-6), default=max(kk))
                                      for i, kk in enumerate(root.kernels)))

    @staticmethod
    def _structure_search(prog: DeepMADProgram, relax: _Relaxation, search: "_Search", root: _Node, start: Design,
                          deadline: float, solves: int) -> None:
        """Steepest-ascent local search over depths and kernels; widths from the fixed-structure relaxation.
        Stops at a local optimum, after ``solves`` relaxations, or at ``deadline``."""
        sp, n = prog.space, prog.n
        seen: dict[tuple[tuple[int, ...], tuple[int, ...]], float] = {}

        def spent() -> bool:
            return len(seen) >= solves or time.perf_counter() > deadline

        def value(L: tuple[int, ...], k: tuple[int, ...]) -> float:
            """The fixed-structure relaxation, within a fraction of a percent of the best design."""
            key = (L, k)
            if key not in seen:
                node = root._replace(lo=L, hi=L, kernels=tuple((x,) for x in k))
                seen[key] = DeepMADSolver._realise(relax, search, node, polish_steps=8)
            return seen[key]

        cur = (start.L, start.k)
        cur_value = value(*cur)
        while cur_value == -math.inf and not spent():
            # an infeasible start (the relaxation's depths cost more than the budgets allow once its widths are
            # realised): the best feasible structure one layer shallower, or else one layer off the deepest
            # superblock, and again. The best designs sit where one more layer breaks a budget, so the search
            # starts at that edge (R50: (1, 1, 20, 20, 16) -> (1, 1, 20, 20, 15); scaling every depth by 0.9
            # started at (1, 1, 18, 18, 14), whose region the local search never left)
            L, k = cur
            shallower = [(L[:i] + (L[i] - 1,) + L[i + 1:], k) for i in range(n) if L[i] > sp.depths[0]]
            if not shallower:
                break
            scored = [(value(*move), move) for move in shallower]
            best_value = max(v for v, _ in scored)
            if best_value > -math.inf:
                cur_value, cur = max(scored, key=lambda vm: vm[0])
                break
            deepest = max(range(n), key=lambda i: (L[i], i))
            cur = (L[:deepest] + (L[deepest] - 1,) + L[deepest + 1:], k)
            cur_value = value(*cur)
        while not spent():
            L, k = cur
            moves = []
            for i in range(n):
                hi = sp.first_depth_max if i == 0 else sp.depths[1]
                for dl in (1, -1):
                    if sp.depths[0] <= L[i] + dl <= hi:
                        moves.append((L[:i] + (L[i] + dl,) + L[i + 1:], k))
                for j in range(n):
                    hj = sp.first_depth_max if j == 0 else sp.depths[1]
                    for di, dj in ((1, -1), (1, 1), (-1, -1)):  # transfers, and joint moves that keep the std
                        if j != i and (di, dj) != (-1, -1) or (j > i and (di, dj) == (-1, -1)):
                            if j == i or (dj == 1 and j < i):
                                continue
                            if sp.depths[0] <= L[i] + di <= hi and sp.depths[0] <= L[j] + dj <= hj:
                                L2 = list(L); L2[i] += di; L2[j] += dj
                                moves.append((tuple(L2), k))
                for kk in sp.kernels:
                    if kk != k[i]:
                        moves.append((L, k[:i] + (kk,) + k[i + 1:]))
            best_move, best_value = None, cur_value
            for move in moves:  # steepest ascent on the relaxation value
                if spent():
                    return
                v = value(*move)
                if v > best_value + 1e-9:
                    best_move, best_value = move, v
            if best_move is None:
                return
            cur, cur_value = best_move, best_value

    @staticmethod
    def _incumbent(prog: DeepMADProgram, relax: _Relaxation, search: "_Search", node: _Node, z: np.ndarray,
                   depths: np.ndarray, tried: dict[tuple[tuple[int, ...], tuple[int, ...]], float]) -> None:
        """Designs from a node: its relaxed solution ``z`` and ``depths`` rounded to depths and kernels, widths
        from the fixed-structure relaxation rounded to the grid (:meth:`_Search.round_box`).

        A structure (depths, kernels) realised before is realised again only in a box of widths at least
        e times smaller (``tried`` keeps the log-volume of the last one): its fixed-structure relaxation
        is tighter there, so its widths are better; otherwise the solve would repeat itself."""
        rounded = search.round(z, node, depths)
        size = sum(math.log(hi / lo) for lo, hi in zip(node.wlo + node.blo, node.whi + node.bhi))
        key = (rounded.L, rounded.k)
        if size > 0 and tried.get(key, math.inf) < size + 1.0:  # a box of one width vector is always realised
            return
        tried[key] = size
        fixed = node._replace(lo=rounded.L, hi=rounded.L, kernels=tuple((k,) for k in rounded.k))
        DeepMADSolver._realise(relax, search, fixed, polish_steps=60, only_improving=True)

    @staticmethod
    def _realise(relax: _Relaxation, search: "_Search", fixed: _Node, *, polish_steps: int,
                 only_improving: bool = False) -> float:
        """Designs of one structure (a box of fixed depths and kernels): its relaxation's widths rounded to the
        grid (:meth:`_Search.round_box`), repaired and polished (``polish_steps``; with ``only_improving``,
        only a design that beats the incumbent); where that design falls more than :data:`SHADE_WHEN` below
        the relaxation (or there is none), the same from the relaxation solved :data:`HEURISTIC_SHADE` inside
        the budgets. Neither solve alone finds the best designs: the unshaded widths round across a budget's
        edge (R50), and with the shaded solve alone R18's best design was not found in 1 000 nodes. Returns
        the unshaded relaxation value (``-inf`` when the structure has no design)."""
        value = -math.inf
        for shade in (0.0, HEURISTIC_SHADE):
            res = relax.solve(fixed, prune=False, shade=shade)
            if res is None or res is UNSOLVED:
                break
            if shade == 0.0:
                value = res[0]  # the penalty is part of the relaxation
            if res[0] <= search.bar():  # nothing there enters the top k
                break
            before = search.best[1].score if search.best else -math.inf
            cand = search.repair(search.round_box(res[1], fixed), max_steps=10)
            if cand is not None and (not only_improving or search.evaluate(cand).score > before):
                cand = search.polish(cand, max_steps=polish_steps)
            if cand is not None and search.evaluate(cand).score >= res[0] - SHADE_WHEN * abs(res[0]):
                break  # the unshaded widths realised well: no second solve
        return value

    @staticmethod
    def _split_widest(node: _Node, m: int) -> list[_Node]:
        """Halves the widest range of a node (used when its relaxation could not be solved)."""
        options = []
        for i, (lo, hi) in enumerate(zip(node.lo, node.hi)):
            if hi > lo:
                options.append(((hi - lo) / hi, "L", i))
        for i, kk in enumerate(node.kernels):
            if len(kk) > 1:
                options.append((0.5, "k", i))
        for i, (lo, hi) in enumerate(zip(node.wlo, node.whi)):
            if hi > lo:
                options.append(((hi - lo) / hi, "w", i))
        for i, (lo, hi) in enumerate(zip(node.blo, node.bhi)):
            if hi > lo:
                options.append(((hi - lo) / hi, "b", i))
        if not options:
            return []
        _, kind, i = max(options)
        if kind == "k":
            kk = node.kernels[i]
            return [node._replace(kernels=node.kernels[:i] + (part,) + node.kernels[i + 1:])
                    for part in (kk[: len(kk) // 2], kk[len(kk) // 2:])]
        lo_f, hi_f = {"L": ("lo", "hi"), "w": ("wlo", "whi"), "b": ("blo", "bhi")}[kind]
        lo, hi = getattr(node, lo_f)[i], getattr(node, hi_f)[i]
        step = 1 if kind == "L" else m
        mid = max(lo, ((lo + hi) // 2) // step * step)
        mid = min(mid, hi - step)
        a = list(getattr(node, hi_f)); a[i] = mid
        b = list(getattr(node, lo_f)); b[i] = mid + step
        return [node._replace(**{hi_f: tuple(a)}), node._replace(**{lo_f: tuple(b)})]

    @staticmethod
    def _branch(prog: DeepMADProgram, relax: _Relaxation, node: _Node, z: np.ndarray, stage_vars: list[int], *,
                structure_first: bool = False) -> list[_Node]:
        """Children of a node: split the range that the relaxation overestimates most at its solution; with
        ``structure_first`` (past :data:`PROOF_GAP`), the widest depth range at its middle, else the first
        kernel set of several, before that."""
        n, m = prog.n, prog.m
        if structure_first:
            depths = [i for i in range(n) if node.hi[i] > node.lo[i]]
            if depths:
                i = max(depths, key=lambda j: node.hi[j] - node.lo[j])
                mid = (node.lo[i] + node.hi[i]) // 2
                return [node._replace(hi=node.hi[:i] + (mid,) + node.hi[i + 1:]),
                        node._replace(lo=node.lo[:i] + (mid + 1,) + node.lo[i + 1:])]
            kernels = [i for i in range(n) if len(node.kernels[i]) > 1]
            if kernels:
                i = kernels[0]
                kk = node.kernels[i]
                return [node._replace(kernels=node.kernels[:i] + (part,) + node.kernels[i + 1:]) for part in ((kk[0],), kk[1:])]
        zl, zu = relax.box(node)
        scores: list[tuple[float, str, int]] = []
        for s, slack in enumerate(relax.stage_slack(node)):
            var = stage_vars[s]
            if node.whi[var] > node.wlo[var]:
                scores.append((float(slack), "w", var))
        D = relax.sol["D"]
        ny = 2.0 if prog.bottleneck else 1.0
        for i, slack in enumerate(relax.link_slack()):
            if node.hi[i] > node.lo[i] and slack > 0:
                scores.append((float(slack), "L", i))
        for i, slack in enumerate(relax.depth_slack(node)):
            if node.lo[i] == 1 < node.hi[i]:
                scores.append((float(slack) + 1e9, "L", i))
                continue
            # the McCormick error of D v grows with the ranges of D and of v = x_o + ny y + kappa:
            # split whichever contributes most
            vl, vu, vrow = relax.v_range(zl, zu, i)
            v_mid = max(1.0, abs(float(vrow @ z)))
            parts = [((node.hi[i] - node.lo[i]) / max(1.0, D[i]), "L", i),
                     ((zu[1 + i] - zl[1 + i]) / v_mid, "w", 1 + i),
                     (ny * (zu[1 + n + i] - zl[1 + n + i]) / v_mid, "b", i)]
            parts = [q for q in parts if q[0] > 0]
            if parts:
                _, kind_i, var = max(parts)
                scores.append((float(slack), kind_i, var))
        w_up = relax.a_up.value
        for i in range(n):
            kk = node.kernels[i]
            if len(kk) > 1:
                kap = z[1 + 2 * n + i]
                dist = min(abs(kap - 2 * math.log(k)) for k in kk)
                weight = prog.f * sum(prog.alpha[s] * w_up[s] for s in range(prog.stage_of[i], len(prog.ends)))
                scores.append((weight * node.hi[i] * dist + (1e6 if dist > 1e-3 else 0.0), "k", i))
        if not scores:  # no overestimate left to target: split any range left (none: a single design)
            return DeepMADSolver._split_widest(node, m)
        _, kind, i = max(scores)

        if kind == "L":
            lo, hi = node.lo[i], node.hi[i]
            if lo == 1:  # D = 0 cannot live in log space: split it off first
                mid = 1
            else:  # split where the relaxation put the depth
                mid = min(max(int(math.floor(float(relax.depths()[i]))), lo), hi - 1)
            hi1 = list(node.hi); hi1[i] = mid
            lo2 = list(node.lo); lo2[i] = mid + 1
            return [node._replace(hi=tuple(hi1)), node._replace(lo=tuple(lo2))]
        if kind == "k":
            kk = node.kernels[i]
            kap = z[1 + 2 * n + i]
            low = tuple(k for k in kk if 2 * math.log(k) <= kap)
            high = tuple(k for k in kk if 2 * math.log(k) > kap)
            if not low or not high:
                low, high = kk[: len(kk) // 2], kk[len(kk) // 2:]
            out = []
            for part in (low, high):
                ks = list(node.kernels); ks[i] = part
                out.append(node._replace(kernels=tuple(ks)))
            return out
        if kind == "b":
            lo, hi = node.blo[i], node.bhi[i]
            at = math.exp(z[1 + n + i])
            mid = int((0.5 * at + 0.5 * math.sqrt(lo * hi)) / m) * m
            mid = min(max(mid, lo), hi - m)
            hi1 = list(node.bhi); hi1[i] = mid
            lo2 = list(node.blo); lo2[i] = mid + m
            return [node._replace(bhi=tuple(hi1)), node._replace(blo=tuple(lo2))]
        lo, hi = node.wlo[i], node.whi[i]
        at = math.exp(z[i])
        mid = int((0.5 * at + 0.5 * math.sqrt(lo * hi)) / m) * m
        mid = min(max(mid, lo), hi - m)
        hi1 = list(node.whi); hi1[i] = mid
        lo2 = list(node.wlo); lo2[i] = mid + m
        return [node._replace(whi=tuple(hi1)), node._replace(wlo=tuple(lo2))]


def smallest_costs(space: SearchSpace, budget: Budget, *, rho0: float | None = None,
                   resolution: int | None = None) -> dict[str, Any]:
    """Smallest MACs and params (and, with a latency budget, predicted latency in ms) of a feasible design
    of the space, each minimised separately.

    Each is found by a local search that minimises the cost among rho-feasible designs, started from
    the smallest widths with the largest kernels (rho needs width), so it is an achievable value.
    """
    out: dict[str, Any] = {}
    keys = ("macs", "params") + (("latency",) if budget.latency_ms is not None else ())
    for key in keys:
        prog = DeepMADProgram(space, Budget(latency_ms=budget.latency_ms) if key == "latency" else Budget(), rho0=rho0,
                              resolution=resolution)
        search = _Search(prog, 1)
        sp, n = space, prog.n
        c0 = sp.stem_widths[0]
        cs = [max(sp.widths[0], c0)]
        for _ in range(n - 1):
            cs.append(cs[-1])
        d = Design(c0, tuple(cs), tuple(prog.b_range(c)[0] for c in cs), tuple(max(sp.kernels) for _ in cs),
                   tuple(sp.depths[0] for _ in cs))
        # grow widths until rho holds, then descend on the cost
        for _ in range(2000):
            if prog.evaluate(d).rho <= prog.rho0:
                break
            d = min((x for x in search.neighbours(d)), key=lambda x: prog.evaluate(x).rho)
        cost = lambda x: getattr(prog.evaluate(x), key)  # noqa: E731
        for _ in range(2000):
            better = [x for x in search.neighbours(d) if prog.evaluate(x).rho <= prog.rho0 and cost(x) < cost(d)]
            if not better:
                break
            d = min(better, key=cost)
        value = getattr(prog.evaluate(d), key)
        if key == "latency":
            out["latency_ms"] = float(value)
        else:
            out[key] = int(value)
    return out


def solve_deepmad(space: SearchSpace, budget: Budget | None = None, *, top_k: int = 5, rho0: float | None = None,
                  resolution: int | None = None, depth_penalty: bool = True, entropy: Literal["code", "paper"] = "code",
                  gap_tol: float = GAP_OPTIMAL, time_limit: float | None = None, max_nodes: int = 1000) -> SolveResult:
    """Solves the DeepMAD program of ``space`` under ``budget`` (default: the space's); deterministic
    unless a ``time_limit`` stops it (see :class:`DeepMADSolver`)."""
    solver = DeepMADSolver(gap_tol=gap_tol, time_limit=time_limit, max_nodes=max_nodes)
    return solver.solve(space, budget or space.budget, top_k=top_k, rho0=rho0, resolution=resolution,
                        depth_penalty=depth_penalty, entropy=entropy)
