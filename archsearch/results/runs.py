"""Candidates of several runs, of any families, merged into one table with Pareto marks.

Scores are comparable only between candidates of the same objective (the same program: DeepMAD's
entropy is not NViT's capacity), so a candidate is marked ``pareto`` when no candidate *of the same
objective* has a score at least as high at no more MACs and parameters of the whole model. Costs
are recomputed from each spec with the cost models so that every row counts the same thing (the
whole model, classifier included) whatever the space's budget convention.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from archsearch._jsonio import describe, expect, read_json
from archsearch.errors import ArchsearchError, SpecError
from archsearch.results.pareto import pareto_ranks

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "VALIDATED_COLUMNS", "candidate_frame", "load_run", "merge_runs", "with_validation"]

#: Columns :func:`with_validation` adds: the trained top-1 (mean over seeds), its std, the number of
#: seeds and the training they come from (dataset/recipe, epochs, max-batches).
VALIDATED_COLUMNS = ("top1", "top1_std", "seeds", "training")

COLUMNS = ("run", "space", "family", "objective", "rank", "name", "score", "macs", "params", "pareto")


def load_run(path: str | Path) -> dict[str, Any]:
    """Reads a run's ``candidates.json`` (``path`` is the run directory or the file itself), checking the
    shape of every field the commands read.

    Raises:
        SpecError: No such file, or not a solve result; the message names the file and the field.
    """
    p = Path(path)
    file = p / "candidates.json" if p.is_dir() else p
    if not file.is_file():
        raise SpecError(f"run: no candidates.json at {p} (expected a run directory written by `archsearch solve --out`)")
    data = read_json(file, what="run")
    if not isinstance(data.get("candidates"), list):
        raise SpecError(f"run {file}: not a solve result; expected a 'candidates' list, got "
                        f"{describe(data.get('candidates')) if 'candidates' in data else 'none'}")
    _check_record(data, f"run {file}")
    data.setdefault("name", p.name if p.is_dir() else p.parent.name)
    return data


# field -> (JSON types accepted, description) of a run record's top level and of its candidates
_RECORD_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "a string"), "space": ((str,), "a string"), "status": ((str,), "a string"),
    "kind": ((str,), "a string"), "budget": ((dict,), "an object"), "provenance": ((dict,), "an object"),
    "front": ((list,), "a list"), "proposals": ((list,), "a list"), "bound": ((int, float), "a number or null"),
    "gap": ((int, float), "a number or null"), "time_s": ((int, float), "a number or null"),
}
_CANDIDATE_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "score": ((int, float), "a number or null"), "macs": ((int, float), "a number or null"),
    "params": ((int, float), "a number or null"), "rho": ((int, float), "a number or null"),
    "latency_ms": ((int, float), "a number or null"), "flops": ((int, float), "a number or null"),
    "extra": ((dict,), "an object"),
}


def _check_record(data: dict[str, Any], source: str) -> None:
    from archsearch.space import spec_from_dict

    for key, (kinds, accepted) in _RECORD_FIELDS.items():
        expect(data.get(key), kinds, f"{source}: {key}", accepted, optional=True)
    for i, row in enumerate(data.get("front") or []):
        expect(row, dict, f"{source}: front[{i}]", "an object")
        expect(row.get("budget"), dict, f"{source}: front[{i}].budget", "an object", optional=True)
    for i, cand in enumerate(data["candidates"]):
        where = f"{source}: candidates[{i}]"
        expect(cand, dict, where, "an object with a 'spec' object and a 'score'")
        if "spec" not in cand:
            raise SpecError(f"{where}: no 'spec'; expected an object with a 'spec' object and a 'score'")
        expect(cand["spec"], dict, f"{where}.spec", "a spec object")
        try:  # every command that reads a run builds, costs or trains its specs: a bad one is named here
            spec_from_dict(cand["spec"])
        except ArchsearchError as exc:
            raise SpecError(f"{where}.spec: {exc}") from None
        for key, (kinds, accepted) in _CANDIDATE_FIELDS.items():
            value = expect(cand.get(key), kinds, f"{where}.{key}", accepted, optional=True)
            if isinstance(value, float) and not math.isfinite(value):
                raise SpecError(f"{where}.{key}: expected a finite number, got {value!r}")


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
