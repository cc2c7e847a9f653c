"""The records of a run directory that several rooms read: the run record ``RUN_DIR/candidates.json``
(what ``archsearch solve --out`` writes and every later command takes) and the keys of a validated
candidate's row.

They live in the lowest room because the study (``validate``, ``search``, ``prune``) and the results
tables both read them: kept in ``results`` (as they were), the study imported the results and the
results the study. Only the standard library, the JSON reader and the spec loader are needed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from archsearch._jsonio import describe, expect, read_json
from archsearch.errors import ArchsearchError, SpecError
from archsearch.space.base import spec_from_dict

__all__ = ["ROW_KEYS", "load_run"]

#: Keys of every validated candidate's row: a validation, search or prune trial's record in the study
#: and a row of ``archsearch results`` (whose ``--format json`` adds ``pareto``).
ROW_KEYS = ("name", "family", "dataset", "recipe", "seed", "macs", "params", "score", "top1", "top5", "test_loss",
            "latency_ms", "train_time_s", "images_per_s", "peak_memory_bytes", "epochs", "device", "amp", "key", "status",
            "distill", "max_batches", "resolution", "kind", "design")


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
