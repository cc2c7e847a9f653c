"""Candidates proposed around a program's optimum: the trials of ``archsearch search``.

A search spends its training budget near the mathematical optimum rather than at random. Three
sources, in this order of preference:

1. ``top-k``: the solver's best designs at the given budget (the optimum first);
2. ``sweep``: the optimum of the same program at smaller budgets (every set budget key scaled by a
   fraction in [0.5, 1)), which shows what the last part of the budget buys;
3. ``neighbour``: single-move perturbations of an optimum (one depth +-1, or one width scaled by
   about +-1/8 and rounded to a multiple of 8) that are valid specs and still fit the budget by the
   cost model.

This module never imports torch or a solver: the caller passes ``solve(budget, top_k)``, so the
program's choice (and its options) stays with the command line.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any, Callable, Iterator, Sequence

from archsearch.errors import SpecError
from archsearch.space.budget import Budget

__all__ = ["ORIGINS", "SWEEP_FRACTIONS", "fits", "neighbours", "propose"]

#: Where a proposal comes from.
ORIGINS = ("top-k", "sweep", "neighbour")
#: Budget fractions of the sweep, taken in this order (the full budget is the top-k's).
SWEEP_FRACTIONS = (0.5, 0.75, 0.625, 0.875)

_DEPTH_KEYS = ("depth", "depths")
_WIDTH_KEYS = ("bottleneck", "out_channels", "mlp_dim", "embed_dim", "embed_dims", "dims")


def fits(spec: Any, budget: Budget, *, with_head: bool) -> bool:
    """Whether ``spec`` satisfies the MACs, params and memory limits of ``budget`` by the cost model.

    A latency limit cannot be checked without a calibrated predictor: callers do not perturb specs
    under a latency budget.
    """
    from archsearch import cost

    if budget.macs is not None and cost.macs(spec, with_head=with_head) > budget.macs:
        return False
    if budget.params is not None and cost.params(spec, with_head=with_head) > budget.params:
        return False
    return budget.memory is None or cost.activation_memory(spec) <= budget.memory


def _widened(value: int, sign: int) -> int:
    new = int(round(value * (1 + sign / 8) / 8)) * 8
    if new == value:
        new = value + 8 * sign
    return new


def _moves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], int, str]]:
    """``(path, new value, label)`` of every single move in a spec dict."""
    if isinstance(node, dict):
        for key, value in node.items():
            sub = (*path, key)
            if key in _DEPTH_KEYS + _WIDTH_KEYS and isinstance(value, int) and not isinstance(value, bool):
                yield from _scalar_moves(sub, value, key in _DEPTH_KEYS)
            elif key in _DEPTH_KEYS + _WIDTH_KEYS and isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, int) and not isinstance(item, bool):
                        yield from _scalar_moves((*sub, i), item, key in _DEPTH_KEYS)
            else:
                yield from _moves(value, sub)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _moves(item, (*path, i))


def _scalar_moves(path: tuple[Any, ...], value: int, depth: bool) -> Iterator[tuple[tuple[Any, ...], int, str]]:
    where = ".".join(str(p) for p in path)
    for sign in (1, -1):
        new = value + sign if depth else _widened(value, sign)
        if new >= 1:
            yield path, new, f"{where}{'+' if sign > 0 else '-'}{abs(new - value)}"


def _apply(data: dict[str, Any], path: tuple[Any, ...], new: int) -> dict[str, Any]:
    out = copy.deepcopy(data)
    parent = out
    for step in path[:-1]:
        parent = parent[step]
    old = parent[path[-1]]
    parent[path[-1]] = new
    if path[-1] == "out_channels":  # keep a channel chain consistent: the next block reads this output
        _follow(out, path, old, new)
    return out


def _follow(data: dict[str, Any], path: tuple[Any, ...], old: int, new: int) -> None:
    if len(path) >= 3 and isinstance(path[-2], int):  # stages[i].out_channels -> stages[i + 1].in_channels
        seq = data
        for step in path[:-2]:
            seq = seq[step]
        nxt = seq[path[-2] + 1] if path[-2] + 1 < len(seq) else None
    else:  # stem.out_channels -> the first entry of the sibling list of blocks
        nxt = next((v[0] for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)), None)
    if isinstance(nxt, dict) and nxt.get("in_channels") == old:
        nxt["in_channels"] = new


def neighbours(spec: Any, budget: Budget, *, with_head: bool, seed: int = 0,
               exclude: Sequence[dict[str, Any]] = ()) -> list[Any]:
    """Valid specs one move away from ``spec`` that fit ``budget`` (seeded order, ``exclude`` left out).

    Each neighbour is named ``NAME~MOVE`` (e.g. ``deepmad-cifar-1~stages.2.depth+1``) when its family
    has a ``name`` field.
    """
    from archsearch.space import spec_from_dict

    base = _plain(spec.to_dict())
    seen = {_anonymous(d) for d in (base, *exclude)}
    out = []
    for path, new, label in _moves({k: v for k, v in base.items() if k not in ("family", "name")}):
        data = _apply(base, path, new)
        if "name" in data:
            data["name"] = f"{base.get('name') or spec.family}~{label}"
        try:
            cand = spec_from_dict(data)
        except (SpecError, ValueError, TypeError, ZeroDivisionError):
            continue
        if _anonymous(data) in seen or not fits(cand, budget, with_head=with_head):
            continue
        seen.add(_anonymous(data))
        out.append(cand)
    random.Random(seed).shuffle(out)
    return out


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """A spec dict as JSON reads it back (lists, not tuples)."""
    return json.loads(json.dumps(data))


def _anonymous(data: dict[str, Any]) -> str:
    """A spec's identity apart from its name, as a canonical JSON string."""
    return json.dumps({k: v for k, v in data.items() if k != "name"}, sort_keys=True)


def _scaled(budget: Budget, fraction: float) -> Budget:
    changes: dict[str, Any] = {}
    for attr in ("macs", "params", "memory"):
        value = getattr(budget, attr)
        if value is not None:
            changes[attr] = max(1, int(value * fraction))
    if budget.latency_ms is not None:
        changes["latency_ms"] = budget.latency_ms * fraction
    return budget.replace(**changes)


def _renamed(spec: Any, name: str) -> Any:
    return spec.replace(name=name) if "name" in spec.to_dict() else spec


def propose(
    *,
    space: Any,
    budget: Budget,
    solve: Callable[[Budget, int], Any],
    trials: int,
    top_k: int = 3,
    sweep_points: int = 2,
    seed: int = 0,
    on_solve: Callable[[str], None] | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    """The optimum's solve result and up to ``trials`` distinct proposals around it.

    Args:
        space: The search space (its ``name`` and ``budget_counts`` are read).
        budget: The budget of the search.
        solve: ``solve(budget, top_k) -> SolveResult`` with the space's program.
        trials: How many proposals at most.
        top_k: Proposals taken from the solver's ranking at the full budget.
        sweep_points: Smaller budgets solved (fractions :data:`SWEEP_FRACTIONS`, in order; at most 4).
        seed: Orders the neighbours.
        on_solve: Called with a short message before every solve (progress).

    Returns:
        ``(result, proposals)``: each proposal has ``spec`` (dict), ``score``, ``macs``, ``params``
        (the space's budget convention), ``origin`` (one of :data:`ORIGINS`) and ``budget``.

    Raises:
        SpecError: ``trials``/``top_k``/``sweep_points`` out of range, or the budget is infeasible.
    """
    from archsearch import cost

    if not isinstance(trials, int) or trials < 1:
        raise SpecError(f"--trials: expected an integer >= 1, got {trials!r}")
    if not isinstance(top_k, int) or top_k < 1:
        raise SpecError(f"--top-k: expected an integer >= 1, got {top_k!r}")
    if not isinstance(sweep_points, int) or not 0 <= sweep_points <= len(SWEEP_FRACTIONS):
        raise SpecError(f"--sweep-points: expected an integer in [0, {len(SWEEP_FRACTIONS)}], got {sweep_points!r}")
    with_head = space.budget_counts == "model"
    k = min(top_k, trials)
    if on_solve:
        on_solve(f"solving {space.name} at {budget.to_text()}")
    result = solve(budget, k)
    if not result.candidates:
        if result.status == "infeasible" and result.smallest:
            raise SpecError(f"search: budget {budget.to_text()} is infeasible for space {space.name}; the smallest "
                            f"feasible design has macs={result.smallest.get('macs')} and params={result.smallest.get('params')}")
        raise SpecError(f"search: no design of space {space.name} found at {budget.to_text()} within the solve's "
                        "time limit; raise --time-limit or the budget")
    proposals: list[dict[str, Any]] = []
    specs: list[dict[str, Any]] = []

    def add(spec: Any, score: float | None, origin: str, at: Budget) -> None:
        data = _plain(spec.to_dict())
        if len(proposals) >= trials or _anonymous(data) in {_anonymous(s) for s in specs}:
            return
        specs.append(data)
        proposals.append({"spec": data, "score": score, "origin": origin, "budget": at.to_dict(),
                          "macs": cost.macs(spec, with_head=with_head), "params": cost.params(spec, with_head=with_head)})

    for cand in result.candidates[:k]:
        add(cand.spec, cand.score, "top-k", budget)
    for fraction in SWEEP_FRACTIONS[:sweep_points]:
        if len(proposals) >= trials:
            break
        at = _scaled(budget, fraction)
        if on_solve:
            on_solve(f"solving {space.name} at {at.to_text()} ({fraction:.0%} of the budget)")
        res = solve(at, 1)
        if res.candidates:
            best = res.candidates[0]
            name = getattr(best.spec, "name", "") or space.name
            add(_renamed(best.spec, f"{name}@{fraction:.0%}"), best.score, "sweep", at)
    if budget.latency_ms is None:  # neighbours are checked with the cost model, which has no latency
        for cand in result.candidates[:k]:
            if len(proposals) >= trials:
                break
            for spec in neighbours(cand.spec, budget, with_head=with_head, seed=seed, exclude=specs):
                add(spec, None, "neighbour", budget)
    return result, proposals
