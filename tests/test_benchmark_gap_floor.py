"""benchmarks/gap_floor.py: how much work a certified gap takes with the DeepMAD relaxation (small space)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gap_floor_measures_the_structure_tree_and_the_best_structures_width_search() -> None:
    """On CIFAR's small space: the thresholds are the incumbent times 1 + gap; at 1 % the root is already below
    its threshold (one relaxation, no structure left); at 0.1 % the tree leaves the structures whose relaxation
    is above it (listed best first), and the best one's own tightening closes it."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gap_floor.py"), "--spaces", "deepmad-cifar",
                           "--width-nodes", "20"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    entry = json.loads(done.stdout)["spaces"]["deepmad-cifar"]
    inc = entry["incumbent"]
    assert 5600 < inc < 5700
    loose, tight = entry["gaps"]["0.01"], entry["gaps"]["0.001"]
    assert loose["threshold"] == round(inc * 1.01, 2) and tight["threshold"] == round(inc * 1.001, 2)
    assert loose["tree_solves"] == 1 and loose["structures_above"] == 0 and "top_structure_width_search" not in loose
    assert tight["structures_above"] >= 1 and tight["tree_solves"] > tight["structures_above"]
    values = [float(t.split(":")[0]) for t in tight["top"]]
    assert values == sorted(values, reverse=True) and all(v > tight["threshold"] for v in values)
    width = tight["top_structure_width_search"]
    assert width["reached"] and width["bound_left"] == tight["threshold"] and width["tightening_solves"] > 0
