"""Regenerates the committed example report: the DeepMAD-R50 solve and its HTML report.

    python reports/make_example.py               # solve (to a certified 0.1 % gap or 1 000 nodes) then write the report
    python reports/make_example.py --reuse       # rewrite the report from the committed run
    python reports/make_example.py --max-nodes 3000

Writes ``reports/deepmad-r50/`` (``candidates.json``, ``pareto.csv``), ``reports/deepmad-r50.html`` and
its front figure as ``docs/images/front.png`` (the README's picture), and prints a JSON line with the
solve's status, gap and the report's size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUN = HERE / "deepmad-r50"
REPORT = HERE / "deepmad-r50.html"
FRONT_PNG = HERE.parent / "docs" / "images" / "front.png"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-nodes", type=int, default=1000, help="branch-and-bound nodes (default 1000: the same run on any machine)")
    parser.add_argument("--gap-tol", type=float, default=1e-3,
                        help="the certified gap to stop at (default 1e-3: R50 reaches 0.06 %% in 748 nodes, ~15 s)")
    parser.add_argument("--reuse", action="store_true", help="keep the committed run; only rewrite the report")
    args = parser.parse_args()
    root = HERE.parent  # run from the repository root so paths in the provenance are relative
    if not args.reuse or not (RUN / "candidates.json").is_file():
        shutil.rmtree(RUN, ignore_errors=True)  # this script's own run, replaced as a whole
        subprocess.run([sys.executable, "-m", "archsearch", "solve", "--space", "deepmad-r50", "--max-nodes",
                        str(args.max_nodes), "--gap-tol", str(args.gap_tol), "--quiet", "--out", str(RUN.relative_to(root))], cwd=root,
                       check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-m", "archsearch", "report", str(RUN.relative_to(root)), "-o",
                    str(REPORT.relative_to(root)), "--title", "archsearch example: DeepMAD-R50 in the paper's space (4.13 G FLOPs, 25.55 M params)"],
                   cwd=root, check=True)
    from archsearch.report import write_front_png

    write_front_png([RUN], out=FRONT_PNG)
    run = json.loads((RUN / "candidates.json").read_text())
    print(json.dumps({"status": run["status"], "gap": run["gap"], "bound": run["bound"], "best_score": run["candidates"][0]["score"],
                      "solve_time_s": run["time_s"], "report": str(REPORT.relative_to(root)), "report_bytes": REPORT.stat().st_size,
                      "front_png": str(FRONT_PNG.relative_to(root))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
