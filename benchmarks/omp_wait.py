"""How OpenMP's wait policy moves CPU training speed on a quiet and on a busy machine; prints one JSON object.

PyTorch's CPU kernels run on an OpenMP thread pool (GNU libgomp in the Linux wheels). By default its
threads spin for a while after each parallel region, waiting for the next one. On a machine whose cores
are all free that saves a wake-up per operator; on a shared machine a spinning thread takes a core that
another process needs, and the small operators of a CPU-sized CNN finish only when every thread of the
pool has been scheduled. ``OMP_WAIT_POLICY=PASSIVE`` (the OpenMP standard's variable; libgomp then
sleeps at once) trades the first for the second. The ``archsearch`` commands that time no latency set it
unless the environment already sets a wait policy (:mod:`archsearch._threads`, :mod:`archsearch.cli.main`).

Method: the training step of the ``quick`` recipe's quickstart network (the ``deepmad-cifar`` design at
``macs=5M,params=150K``, batch 64 at 32 px, AdamW) in fresh processes, ``--threads`` torch threads, each
wait policy in turn (OpenMP's default; ``OMP_WAIT_POLICY=PASSIVE``; libgomp's ``GOMP_SPINCOUNT=10000``, a
short spin) ``--repeats`` times, interleaved; in three conditions: alone (``quiet``), beside ``--busy``
processes that each spin on a core (``spinning``), and beside another training process of the same step
with the default policy (``training``: a second worker or a background study). The figures are the
medians of seconds per step, wall (``time.perf_counter``) and the process's CPU time
(``time.process_time``), and each policy's speed-up over the default within the condition (above 1:
faster). Results of this machine: ``reports/omp-wait.json`` (docs/training.md quotes them).
Usage: ``python benchmarks/omp_wait.py [--threads 2] [--busy 2] [--steps 30] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time

_STEP = r"""
import json, sys, time, torch
from archsearch.models import build_model
from archsearch.space import Budget, get_space
from archsearch.solvers import solve_deepmad
torch.manual_seed(0)
torch.set_num_threads(int(sys.argv[1]))
steps = int(sys.argv[2])
spec = solve_deepmad(get_space("deepmad-cifar"), Budget.parse("macs=5M,params=150K"), max_nodes=50).best.spec
model = build_model(spec)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))

def step():
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()

for _ in range(3):
    step()
c0, t0 = time.process_time(), time.perf_counter()
for _ in range(steps):
    step()
print(json.dumps({"wall_s": (time.perf_counter() - t0) / steps, "cpu_s": (time.process_time() - c0) / steps}))
"""

POLICIES = {"default": {}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}, "spin10k": {"GOMP_SPINCOUNT": "10000"}}


def _spin(stop: mp.Event) -> None:  # one busy core
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def _env(policy: str) -> dict[str, str]:
    """This environment without any wait-policy variable of the user's, then the policy's."""
    from archsearch._threads import _USER_VARS

    return {**{k: v for k, v in os.environ.items() if k not in _USER_VARS}, **POLICIES[policy]}


def _other_training(threads: int) -> subprocess.Popen:
    """Another training process (the same step, OpenMP's default policy) running until killed: what a
    second worker, a background study or a colleague's job puts beside a run on a shared machine."""
    return subprocess.Popen([sys.executable, "-c", _STEP, str(threads), "1000000"], env=_env("default"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _run(policy: str, threads: int, steps: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _STEP, str(threads), str(steps)], env=_env(policy), check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--busy", type=int, default=2, help="spinning processes of the 'spinning' condition (default 2)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    out: dict[str, object] = {"threads": args.threads, "busy": args.busy, "steps": args.steps, "repeats": args.repeats,
                              "cpus": os.cpu_count(), "load_before": os.getloadavg()[0], "conditions": {}}
    for condition in ("quiet", "spinning", "training"):
        stop = mp.Event()
        spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.busy if condition == "spinning" else 0)]
        for p in spinners:
            p.start()
        other = _other_training(args.threads) if condition == "training" else None
        if other is not None:
            time.sleep(8)  # past its imports and solve: training
        try:
            runs: dict[str, list[dict[str, float]]] = {p: [] for p in POLICIES}
            for _ in range(args.repeats):
                for policy in POLICIES:  # interleaved, so a drift of the machine's load hits all alike
                    runs[policy].append(_run(policy, args.threads, args.steps))
        finally:
            stop.set()
            for p in spinners:
                p.join()
            if other is not None:
                other.kill()
                other.wait()
        row: dict[str, object] = {}
        for policy, rs in runs.items():
            row[policy] = {k: round(statistics.median(r[k] for r in rs), 4) for k in ("wall_s", "cpu_s")}
        for policy in POLICIES:  # above 1: faster than OpenMP's default
            if policy != "default":
                row[f"speedup_wall_{policy}"] = round(row["default"]["wall_s"] / row[policy]["wall_s"], 2)  # type: ignore[index]
                row[f"speedup_cpu_{policy}"] = round(row["default"]["cpu_s"] / row[policy]["cpu_s"], 2)  # type: ignore[index]
        out["conditions"][condition] = row  # type: ignore[index]
    out["note"] = "seconds per training step (medians); wall times depend on the machine and its other load"
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
