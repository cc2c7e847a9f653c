"""Times the README's quickstart, step by step, as a new user runs it; prints one JSON object.

The commands are read from the README itself (the first ``bash`` block under ``## Quickstart``), so the
figures are those of what the README says. Each runs as its own process in a fresh temporary directory
(``--keep DIR`` to keep it), in order, with the user's environment; a failing step stops the run
(exit code 1). Per step: the wall time (``time.perf_counter``) and the CPU time of the child
(``resource.getrusage(RUSAGE_CHILDREN)``, user + system), so a loaded machine shows as CPU well below
wall. Wall times depend on the machine and its load; the output records the 1-minute load average
before and after. Usage: ``python benchmarks/quickstart.py [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quickstart_commands(readme: Path = ROOT / "README.md") -> list[str]:
    """The command lines of the README's quickstart block (comments and blank lines dropped)."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    start = lines.index("## Quickstart")
    i = next(j for j in range(start, len(lines)) if lines[j].strip() == "```bash")
    out = []
    for line in lines[i + 1:]:
        if line.strip() == "```":
            break
        cmd = line.split(" #", 1)[0].strip()
        if cmd and not cmd.startswith("#"):
            out.append(cmd)
    return out


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="run in this (new) directory and keep it")
    args = parser.parse_args(argv)
    cmds = quickstart_commands()
    with tempfile.TemporaryDirectory(prefix="archsearch-quickstart-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        out: dict[str, object] = {"cpus": os.cpu_count(), "load_before": round(os.getloadavg()[0], 2), "steps": []}
        ok = True
        for cmd in cmds:
            t0, c0 = time.perf_counter(), _child_cpu()
            proc = subprocess.run(shlex.split(cmd), cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            step = {"command": cmd, "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(_child_cpu() - c0, 1),
                    "rc": proc.returncode}
            out["steps"].append(step)  # type: ignore[union-attr]
            print(f"{step['wall_s']:7.1f} s wall {step['cpu_s']:7.1f} s CPU  {cmd}", file=sys.stderr, flush=True)
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                ok = False
                break
        steps = out["steps"]
        out["total_wall_s"] = round(sum(s["wall_s"] for s in steps), 1)  # type: ignore[union-attr]
        out["total_cpu_s"] = round(sum(s["cpu_s"] for s in steps), 1)  # type: ignore[union-attr]
        out["load_after"] = round(os.getloadavg()[0], 2)
        out["note"] = "wall times depend on the machine and its load; CPU times less so"
    print(json.dumps(out, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
