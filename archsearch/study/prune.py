"""Recording a pruning run (``archsearch prune``) in its run directory's study.

The pruned model becomes the single candidate of ``RUN_DIR/candidates.json`` and one completed trial
of the run's Optuna study (value: top-1 after fine-tuning), with the row keys of
:data:`~archsearch.space.records.ROW_KEYS` plus the before/after figures, so ``archsearch results
RUN_DIR`` and the report read it like a validated candidate. Re-recording the same run (same key)
replaces nothing: the finished trial is kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from archsearch._files import atomic_write_text
from archsearch.study.store import ValidationStudy, default_storage

__all__ = ["record_prune"]


def record_prune(run_dir: str | Path, results: dict[str, Any], *, storage: str | None = None) -> dict[str, Any]:
    """Writes ``candidates.json`` and the study trial of a pruning run's results.

    Args:
        run_dir: The ``--out`` directory of ``archsearch prune``.
        results: What :func:`archsearch.train.prune.prune_model` returned.
        storage: Optuna storage URL (default ``sqlite:///RUN_DIR/study.db``).

    Returns:
        The trial's row (keys of ``ROW_KEYS`` plus ``status``).
    """
    from archsearch.space.records import ROW_KEYS

    run_dir = Path(run_dir)
    name = run_dir.resolve().name
    spec = results["spec"]
    after, before = results["after"], results["before"]
    record = {
        "name": name, "space": "prune", "status": "pruned", "budget": results["budget"],
        "candidates": [{"spec": spec, "score": None, "macs": after["macs"], "params": after["params"], "rho": None,
                        "latency_ms": after["latency_ms"]}],
        "provenance": {"solver": f"prune/{results['criterion']}", "seed": results["seed"], "model": results["model"]},
    }
    atomic_write_text(run_dir / "candidates.json", json.dumps(record, indent=2))
    study = ValidationStudy(name=name, storage=storage or default_storage(run_dir))
    attrs = {
        "name": spec.get("name") or name, "family": "vit", "dataset": results["dataset"], "recipe": results["recipe"],
        "seed": results["seed"], "macs": after["macs"], "params": after["params"], "score": None, "spec": spec,
        "recipe_params": results["recipe_params"], "criterion": results["criterion"], "model": results["model"],
        "budget": results["budget"], "latency_model": results["latency_model"],
        "top1_before": before["top1"], "macs_before": before["macs"], "params_before": before["params"],
        "latency_ms_before": before["latency_ms"], "top1_after_pruning": results["after_pruning"]["top1"],
        "blocks": results["blocks"], "profile": results["profile"], "dense_profile": results["dense_profile"],
    }
    done = study.finished()
    if results["key"] in done:
        row = {k: done[results["key"]].user_attrs.get(k) for k in ROW_KEYS}
        row["status"] = "cached"
        return row
    history = results["finetune_history"]
    metrics = {
        "top1": after["top1"], "top5": after["top5"], "test_loss": after["test_loss"], "latency_ms": after["latency_ms"],
        "train_time_s": results["prune_time_s"] + results["finetune_time_s"], "images_per_s": None,
        "peak_memory_bytes": None, "epochs": len(history), "device": results["device"], "amp": "off",
        "history": history,
    }
    trial = study.start(results["key"], attrs)
    study.finish(trial, metrics)
    row = {k: {**attrs, **metrics, "key": results["key"]}.get(k) for k in ROW_KEYS}
    row["status"] = "pruned"
    return row
