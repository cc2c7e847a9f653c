"""Shared helpers of the training tests: a tiny CNN on digits that trains in a fraction of a second."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from archsearch.space import CNNSpec, StageSpec, StemSpec


def tiny_spec(resolution: int = 16, name: str = "tiny", width: int = 16) -> CNNSpec:
    return CNNSpec(
        stem=StemSpec(out_channels=8, kernel=3, stride=1),
        stages=(StageSpec("k1kxk1", in_channels=8, out_channels=width, bottleneck=8, kernel=5, stride=2, depth=1),
                StageSpec("k1kxk1", in_channels=width, out_channels=width, bottleneck=8, kernel=5, stride=2, depth=1)),
        resolution=resolution, num_classes=10, name=name,
    )


def write_run(run_dir: Path, specs: list[CNNSpec], name: str = "tiny-run") -> Path:
    """A minimal ``candidates.json`` as ``archsearch solve --out`` writes it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    cands = [{"spec": s.to_dict(), "score": float(10 - i), "macs": 0, "params": 0, "rho": None} for i, s in enumerate(specs)]
    (run_dir / "candidates.json").write_text(json.dumps({"name": name, "space": "test", "candidates": cands}))
    return run_dir


def one_thread() -> None:
    # Two xdist workers share two cores: OpenMP threads spinning against each other slow tiny convs 10x.
    torch.set_num_threads(1)


def seeded_tiny_model(seed: int = 0) -> torch.nn.Module:
    """:func:`tiny_spec` built for 10 classes with weights drawn from ``seed``."""
    from archsearch.models import build_model

    torch.manual_seed(seed)
    return build_model(tiny_spec(), num_classes=10)


class Stop(Exception):
    """Raised by a test's callback to interrupt a training run."""
