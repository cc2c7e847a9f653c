"""Candidates of several runs, of any families, merged into one table with Pareto marks.

Scores are comparable only between candidates of the same objective (the same program: DeepMAD's
entropy is not NViT's capacity), so a candidate is marked ``pareto`` when no candidate *of the same
objective* has a score at least as high at no more MACs and parameters of the whole model. Costs
are recomputed from each spec with the cost models so that every row counts the same thing (the
whole model, classifier included) whatever the space's budget convention.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from archsearch.errors import ArchsearchError, SpecError
from archsearch.results.pareto import pareto_ranks
from archsearch.space.records import load_run

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "VALIDATED_COLUMNS", "candidate_frame", "load_run", "merge_runs", "with_validation"]

#: Columns :func:`with_validation` adds: the trained top-1 (mean over seeds), its std, the number of
#: seeds and the training they come from (dataset/recipe, epochs, max-batches).
VALIDATED_COLUMNS = ("top1", "top1_std", "seeds", "training")

COLUMNS = ("run", "space", "family", "objective", "rank", "name", "score", "macs", "params", "pareto")


def _record_file(p: Path) -> Path:
    return p / "candidates.json" if p.is_dir() else p


def _objective(data: dict[str, Any]) -> str:
    """The program a run's scores come from: the solver its space names, else what its provenance says."""
    from archsearch.errors import UnknownNameError
    from archsearch.space import get_space

    try:
        return get_space(str(data.get("space", ""))).solver
    except UnknownNameError:
        solver = str((data.get("provenance") or {}).get("solver", "")).split("/")[0]
        return solver or str(data.get("space", ""))


def merge_runs(paths: Iterable[str | Path]) -> "pd.DataFrame":
    """One row per candidate of every run, with whole-model MACs/params and Pareto marks.

    Args:
        paths: Run directories (or ``candidates.json`` files).

    Returns:
        A DataFrame with :data:`COLUMNS`, sorted by objective and score (best first).
    """
    return candidate_frame(paths)[list(COLUMNS)]


def candidate_frame(paths: Iterable[str | Path]) -> "pd.DataFrame":
    """:func:`merge_runs` with more columns: ``front`` (the non-dominated sorting rank of score, MACs
    and params within the objective; front 1 is ``pareto``), ``budget_macs``/``budget_params`` (as
    the run's space counts them), ``rho``, ``latency_ms`` (predicted, when the solve had a latency
    model; else NaN), ``spec`` (the spec's dict) and ``path`` (the run's directory).
    """
    import pandas as pd

    from archsearch import cost
    from archsearch.space import spec_from_dict

    rows = []
    paths = list(paths)
    for path in paths:
        data = load_run(path)
        p = Path(path)
        for rank, cand in enumerate(data["candidates"], 1):
            try:
                spec = spec_from_dict(cand["spec"])
            except ArchsearchError as exc:
                raise SpecError(f"run {_record_file(p)}: candidates[{rank - 1}].spec: {exc}") from None
            rows.append({
                "run": data["name"], "space": data.get("space", ""), "family": spec.family, "objective": _objective(data),
                "rank": rank, "name": getattr(spec, "name", "") or f"{data['name']}-{rank}", "score": float("nan") if cand.get("score") is None else float(cand["score"]),
                "macs": cost.macs(spec, with_head=True), "params": cost.params(spec, with_head=True),
                "budget_macs": cand.get("macs"), "budget_params": cand.get("params"), "rho": cand.get("rho"),
                "latency_ms": cand.get("latency_ms", float("nan")), "spec": cand["spec"],
                "path": str(p if p.is_dir() else p.parent),
            })
    if not rows:
        raise SpecError(f"runs: no candidates in {', '.join(str(p) for p in paths)}; expected runs whose "
                        f"candidates.json lists at least one candidate")
    frame = pd.DataFrame(rows)
    frame["front"] = 0
    for _, group in frame.groupby("objective", sort=False):
        frame.loc[group.index, "front"] = pareto_ranks(group[["score", "macs", "params"]].to_dict("records"),
                                                       {"score": "max", "macs": "min", "params": "min"})
    frame["pareto"] = frame["front"] == 1
    frame["latency_ms"] = frame["latency_ms"].astype(float)
    return frame.sort_values(["objective", "score"], ascending=[True, False], kind="stable").reset_index(drop=True)


def _training_label(row: Any) -> str:
    text = f"{row['dataset']}/{row['recipe']} {int(row['epochs'])} ep" if row.get("epochs") == row.get("epochs") else \
        f"{row['dataset']}/{row['recipe']}"
    mb = row.get("max_batches")
    return text + (f" x {int(mb)} b" if mb is not None and mb == mb else "")


def with_validation(frame: "pd.DataFrame", paths: Iterable[str | Path], *, storage: str | None = None) -> "pd.DataFrame":
    """``frame`` (from :func:`merge_runs`) with :data:`VALIDATED_COLUMNS` from the runs' studies.

    A candidate trained in several ways (other epochs, a smoke run) shows the most complete training:
    the most epochs, then full epochs before ``max_batches`` ones, then the most seeds. Candidates never
    trained keep NaN (``seeds`` 0).
    """
    import pandas as pd

    from archsearch.results.validation import load_validation, validated_frame

    best: dict[tuple[str, str], dict[str, Any]] = {}
    for path in paths:
        found = load_validation(path, storage=storage)
        if found is None:
            continue
        table = validated_frame(found.results)
        for _, row in table.iterrows():
            epochs = row["epochs"] if row["epochs"] == row["epochs"] and row["epochs"] is not None else 0
            full = row.get("max_batches") is None or row.get("max_batches") != row.get("max_batches")
            rank = (float(epochs), full, int(row["seeds"]))
            key = (str(row["run"]), str(row["name"]))
            if key not in best or rank > best[key]["rank"]:
                best[key] = {"rank": rank, "top1": float(row["top1"]), "top1_std": float(row["top1_std"]),
                             "seeds": int(row["seeds"]), "training": _training_label(row)}
    frame = frame.copy()
    keys = list(zip(frame["run"].astype(str), frame["name"].astype(str)))
    frame["top1"] = [best.get(k, {}).get("top1", float("nan")) for k in keys]
    frame["top1_std"] = [best.get(k, {}).get("top1_std", float("nan")) for k in keys]
    frame["seeds"] = pd.array([best.get(k, {}).get("seeds", 0) for k in keys], dtype="int64")
    frame["training"] = [best.get(k, {}).get("training", "") for k in keys]
    return frame
