"""Search quality on real data: do the designed networks train better than naive ones of the same cost?

On Fashion-MNIST (Debian's ``dataset-fashion-mnist``) and the ``deepmad-fmnist`` space (28 px, grey),
at three budgets spanning 16x in MACs, the study trains with one recipe:

* ``designed``: the DeepMAD solver's best design (``solve --max-nodes``, so the answer does not depend on
  the machine's speed), ``--seeds`` seeds;
* ``baseline``: the space's reference design (a bottleneck ResNet for small images) scaled uniformly to
  the budget (``archsearch baseline --scale uniform``), the same seeds;
* ``random``: ``--random`` designs drawn from the space within the budget and its rules
  (``archsearch sample``), one seed each.

Every design is a run directory under ``--out`` (``<budget>/<kind>``) that the CLI reads
(``results``, ``pareto``, ``report``), and every training a trial of that run's Optuna study, so the
study is resumable: killed and re-run with the same arguments, it trains only what is missing.
``--budgets`` runs a piece (e.g. ``--budgets 1M``) so that each piece fits a working session.

Outputs: ``results.csv`` (one row per design x seed: budget, kind, design, seed, macs, params, score,
top1, epochs, max_batches, train_time_s), ``summary.json`` (printed too), ``summary.md`` (its tables in
Markdown) and ``report.html``.
Statistics: per budget, mean +- sample std of top-1 per kind, and designed - baseline paired by seed
with a 95 % t interval; over all designs (top-1 averaged over a design's seeds), Spearman's rho of
score, MACs and params with top-1, with a 95 % bootstrap interval (1,000 resamples of the designs,
seeded) and n, both over all designs and pooled within budgets (the budgets' protocols differ, so the
within-budget ranks are the like-for-like ones). Wall time depends on the machine; CPU time (``time.process_time``) is reported beside it.

Run from the repository root::

    nohup python benchmarks/search_quality.py --budgets 1M > search-quality-1M.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

#: name -> budget text (the params cap keeps MACs : params at 20 : 1, as for every budget of the study)
BUDGETS = {"1M": "macs=1M,params=50K", "4M": "macs=4M,params=200K", "16M": "macs=16M,params=800K"}
SPACE = "deepmad-fmnist"


def _cli(argv: list[str]) -> None:
    import contextlib
    import io

    from archsearch.cli.main import main

    with contextlib.redirect_stdout(io.StringIO()):  # the run directory holds what it prints
        code = main(argv)
    if code != 0:
        raise SystemExit(f"archsearch {' '.join(argv)} exited {code}")


def prepare(out: Path, budget: str, *, random: int, max_nodes: int, sample_seed: int) -> dict[str, Path]:
    """The budget's three run directories (made once; every command is deterministic)."""
    text = BUDGETS[budget]
    dirs = {kind: out / budget / kind for kind in ("designed", "baseline", "random")}
    if not (dirs["designed"] / "candidates.json").is_file():
        _cli(["solve", "--space", SPACE, "--budget", text, "--max-nodes", str(max_nodes), "--time-limit", "1e6",
              "--top-k", "1", "--name", f"{budget}-designed", "--out", str(dirs["designed"]), "--format", "json"])
    if not (dirs["baseline"] / "candidates.json").is_file():
        _cli(["baseline", "--space", SPACE, "--budget", text, "--scale", "uniform", "--name", f"{budget}-baseline",
              "--out", str(dirs["baseline"]), "--format", "json"])
    if not (dirs["random"] / "candidates.json").is_file():
        _cli(["sample", "--space", SPACE, "--budget", text, "-n", str(random), "--seed", str(sample_seed),
              "--name", f"{budget}-random", "--out", str(dirs["random"]), "--format", "json"])
    return dirs


def train(dirs: dict[str, Path], *, seeds: list[int], random_seeds: list[int], epochs: int, max_batches: int | None,
          eval_every: int, recipe: str) -> None:
    from archsearch.study import validate_run

    for kind, path in dirs.items():
        t0, c0 = time.perf_counter(), time.process_time()
        rows = validate_run(path, dataset="fashion-mnist", recipe=recipe, device="cpu", epochs=epochs, max_batches=max_batches,
                            seeds=random_seeds if kind == "random" else seeds, latency=False, eval_every=eval_every,
                            on_result=lambda r: print(f"  {r['name']} seed {r['seed']}: top1 {100 * r['top1']:.2f} % "
                                                       f"({r['status']}, {r['train_time_s']:.0f} s)", file=sys.stderr,
                                                       flush=True))
        print(f"{path}: {len(rows)} trainings, wall {time.perf_counter() - t0:.0f} s, cpu {time.process_time() - c0:.0f} s",
              file=sys.stderr, flush=True)


def collect(out: Path, budgets: list[str]) -> Any:
    """``results.csv``'s rows from every finished trial of the study's runs."""
    import pandas as pd

    from archsearch.errors import SpecError
    from archsearch.study import load_results

    rows = []
    for budget in budgets:
        for kind in ("designed", "baseline", "random"):
            path = out / budget / kind
            if not (path / "study.db").is_file():
                continue
            try:
                found = load_results(path)
            except SpecError:
                continue
            specs = {c["spec"].get("name"): c["spec"] for c in json.loads((path / "candidates.json").read_text())["candidates"]}
            for r in found:
                rows.append({"budget": budget, "kind": kind, "design": r["name"], "spec": json.dumps(specs.get(r["name"])),
                             "seed": r["seed"], "macs": r["macs"],
                             "params": r["params"], "score": r["score"], "top1": r["top1"], "epochs": r["epochs"],
                             "max_batches": r["max_batches"], "train_time_s": r["train_time_s"], "key": r["key"]})
    return pd.DataFrame(rows)


def _t95(df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, df))


def _spearman_ci(x: Any, y: Any, *, reps: int = 1000, seed: int = 0) -> dict[str, Any]:
    import numpy as np
    from scipy import stats

    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    if n < 3:
        return {"rho": None, "ci95": None, "n": n}
    rho = float(stats.spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(reps):
        idx = rng.integers(0, n, n)
        if len(set(x[idx])) > 1 and len(set(y[idx])) > 1:
            boots.append(stats.spearmanr(x[idx], y[idx]).statistic)
    lo, hi = np.percentile(boots, [2.5, 97.5]) if boots else (math.nan, math.nan)
    return {"rho": round(rho, 4), "ci95": [round(float(lo), 4), round(float(hi), 4)], "n": n}


def _stratified_spearman(designs: Any, col: str, *, reps: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Spearman's rho within each budget, averaged with weights n (the budgets' protocols differ, so ranks
    are compared only within a budget); the 95 % interval resamples designs within each budget."""
    import numpy as np
    from scipy import stats

    groups = [(g[col].to_numpy(float), g["top1"].to_numpy(float)) for _, g in designs.groupby("budget", sort=False)]
    groups = [(x, y) for x, y in groups if len(x) >= 3]
    if not groups:
        return {"rho": None, "ci95": None, "n": 0}

    def pooled(pairs: list[tuple[Any, Any]]) -> float:
        vals = [(stats.spearmanr(x, y).statistic, len(x)) for x, y in pairs if len(set(x)) > 1 and len(set(y)) > 1]
        return float(sum(r * n for r, n in vals) / sum(n for _, n in vals)) if vals else float("nan")

    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(reps):
        sample = []
        for x, y in groups:
            idx = rng.integers(0, len(x), len(x))
            sample.append((x[idx], y[idx]))
        value = pooled(sample)
        if value == value:
            boots.append(value)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"rho": round(pooled(groups), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "n": int(sum(len(x) for x, _ in groups)), "budgets": len(groups)}


#: Other objectives of the same program, scored after the fact on the trained designs (no training is
#: chosen by them): what would have ranked the designs better? Exploratory, not a tuned claim. (The
#: paper's entropy, without the 1/2, is twice the code's and ranks every design alike: left out.)
VARIANTS = {"score": ({}, {}), "no_depth_penalty": ({"depth_penalty": False}, {}),
            "last_stage_weight_1": ({}, {"last_stage_weight": 1.0})}


def _exploratory(frame: Any) -> dict[str, Any]:
    from archsearch.solvers.designs import score_spec
    from archsearch.space import get_space, spec_from_dict

    space = get_space(SPACE)
    designs = frame.groupby(["budget", "kind", "design"], sort=False).agg(
        top1=("top1", "mean"), spec=("spec", "first")).reset_index()
    specs = [spec_from_dict(json.loads(s)) for s in designs["spec"]]
    for name, (options, changes) in VARIANTS.items():
        designs[name] = [score_spec(space.replace(**changes), spec, **options).score for spec in specs]
    designs["rho"] = [score_spec(space, spec).rho for spec in specs]
    designs["depth"] = [spec.depth for spec in specs]
    designs["inner_ratio"] = [sum(st.bottleneck / st.out_channels * st.depth for st in spec.stages) / spec.depth
                              for spec in specs]
    return {"note": "Spearman with top-1 of other scores of the same program and of plain structure figures (rho, "
                    "blocks, mean inner/output width ratio), computed after training on the same designs; exploratory, "
                    "no design was chosen by them",
            **{col: _stratified_spearman(designs, col) for col in (*VARIANTS, "rho", "depth", "inner_ratio")}}


def summarise(frame: Any) -> dict[str, Any]:
    import numpy as np

    out: dict[str, Any] = {"budgets": {}, "rank_correlation": {}}
    if frame.empty:
        return out
    for budget, group in frame.groupby("budget", sort=False):
        entry: dict[str, Any] = {"budget": BUDGETS.get(budget, budget)}
        for kind, rows in group.groupby("kind", sort=False):
            top = rows["top1"].astype(float) * 100
            entry[kind] = {"top1_mean": round(float(top.mean()), 3), "top1_std": round(float(top.std(ddof=1)), 3)
                           if len(top) > 1 else None, "trainings": int(len(top)), "designs": int(rows["design"].nunique()),
                           "macs": sorted(int(v) for v in rows["macs"].unique()),
                           "params": sorted(int(v) for v in rows["params"].unique()),
                           "score": sorted(round(float(v), 2) for v in rows["score"].unique())}
        d = group[group["kind"] == "designed"].set_index("seed")["top1"] * 100
        b = group[group["kind"] == "baseline"].set_index("seed")["top1"] * 100
        common = sorted(set(d.index) & set(b.index))
        if common:
            diff = np.array([d[s] - b[s] for s in common])
            half = _t95(len(diff) - 1) * diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else math.nan
            entry["designed_minus_baseline"] = {
                "mean": round(float(diff.mean()), 3), "ci95": [round(float(diff.mean() - half), 3), round(float(diff.mean() + half), 3)]
                if len(diff) > 1 else None, "seeds": common, "per_seed": [round(float(v), 3) for v in diff]}
        out["budgets"][budget] = entry
    designs = frame.groupby(["budget", "kind", "design"], sort=False).agg(
        top1=("top1", "mean"), score=("score", "first"), macs=("macs", "first"), params=("params", "first")).reset_index()
    for col in ("score", "macs", "params"):
        out["rank_correlation"][col] = _spearman_ci(designs[col], designs["top1"])
    within = {}
    for budget, group in designs.groupby("budget", sort=False):
        within[budget] = _spearman_ci(group["score"], group["top1"])
    out["rank_correlation_within_budget"] = within
    out["rank_correlation_stratified"] = {col: _stratified_spearman(designs, col) for col in ("score", "macs", "params")}
    out["exploratory"] = _exploratory(frame)
    out["trainings"] = int(len(frame))
    out["train_time_s"] = round(float(frame["train_time_s"].sum()), 1)
    return out


def markdown(summary: dict[str, Any], frame: Any) -> str:
    """The study's tables as Markdown (written to ``summary.md``; docs/comparisons.md quotes it)."""

    def cell(entry: dict[str, Any] | None) -> str:
        if not entry:
            return "-"
        std = f" ± {entry['top1_std']:.2f}" if entry.get("top1_std") is not None else ""
        return f"{entry['top1_mean']:.2f}{std} ({entry['trainings']})"

    lines = ["| budget | designed | baseline (uniform) | random | designed − baseline (95 % CI, paired by seed) |",
             "|---|---|---|---|---|"]
    for budget, entry in summary["budgets"].items():
        diff = entry.get("designed_minus_baseline")
        dtext = "-" if not diff else f"{diff['mean']:+.2f} [{diff['ci95'][0]:+.2f}, {diff['ci95'][1]:+.2f}]" if diff["ci95"] \
            else f"{diff['mean']:+.2f}"
        lines.append(f"| {entry['budget']} | {cell(entry.get('designed'))} | {cell(entry.get('baseline'))} | "
                     f"{cell(entry.get('random'))} | {dtext} |")
    lines += ["", "top-1 % as mean ± sample std (trainings); random: one seed per design, the std is across designs.", "",
              "| design | budget | kind | MACs | params | score | top-1 % (seeds) |", "|---|---|---|---|---|---|---|"]
    if not frame.empty:
        per = frame.groupby(["budget", "kind", "design"], sort=False).agg(
            macs=("macs", "first"), params=("params", "first"), score=("score", "first"), top1=("top1", "mean"),
            std=("top1", "std"), n=("top1", "size")).reset_index()
        for r in per.itertuples():
            std = f" ± {100 * r.std:.2f}" if r.n > 1 else ""
            lines.append(f"| {r.design} | {r.budget} | {r.kind} | {r.macs:,} | {r.params:,} | {r.score:.1f} | "
                         f"{100 * r.top1:.2f}{std} ({r.n}) |")
    lines += ["", "| Spearman with top-1 (designs) | rho | 95 % bootstrap CI | n |", "|---|---|---|---|"]
    rows = [(f"{col} (all budgets)", rc) for col, rc in summary["rank_correlation"].items()]
    rows += [(f"{col} (within budgets, pooled)", rc) for col, rc in summary.get("rank_correlation_stratified", {}).items()]
    rows += [(f"exploratory: {col} (within budgets, pooled)", rc) for col, rc in summary.get("exploratory", {}).items()
             if isinstance(rc, dict)]
    rows += [(f"score within {budget}", rc) for budget, rc in summary.get("rank_correlation_within_budget", {}).items()]
    for label, rc in rows:
        ci = f"[{rc['ci95'][0]:+.2f}, {rc['ci95'][1]:+.2f}]" if rc.get("ci95") else "-"
        rho = f"{rc['rho']:+.3f}" if rc.get("rho") is not None else "-"
        lines.append(f"| {label} | {rho} | {ci} | {rc['n']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from archsearch._threads import prefer_passive_wait

    prefer_passive_wait()  # it times no latency: idle CPU threads may sleep (archsearch._threads)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/search-quality", help="study directory (default reports/search-quality)")
    parser.add_argument("--budgets", default="1M,4M,16M", help=f"pieces to run, from {list(BUDGETS)} (default all)")
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the designed and baseline networks (default 0,1,2)")
    parser.add_argument("--random", type=int, default=6, help="random designs per budget (default 6)")
    parser.add_argument("--random-seeds", default="0", help="seeds of each random design (default 0)")
    parser.add_argument("--recipe", default="fmnist")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of every training (default 4)")
    parser.add_argument("--max-batches", default="16M=200",
                        help="batches of 128 per epoch, per budget: BUDGET=N[,BUDGET=N] (default 16M=200: the 16M-MAC "
                             "networks train on 200 batches, 25,600 images, of each epoch's shuffle; the others on all)")
    parser.add_argument("--eval-every", type=int, default=4, help="test-split evaluation every K epochs (default 4)")
    parser.add_argument("--max-nodes", type=int, default=1000, help="branch-and-bound nodes of the solve (default 1000)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--no-train", action="store_true", help="only make the run directories and summarise")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    budgets = [b.strip() for b in args.budgets.split(",") if b.strip()]
    unknown = [b for b in budgets if b not in BUDGETS]
    if unknown:
        parser.error(f"--budgets: unknown {unknown}; known {list(BUDGETS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    max_batches: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in args.max_batches.split(","))):
        key, _, value = part.partition("=")
        if key not in BUDGETS or not value.isdigit() or int(value) < 1:
            parser.error(f"--max-batches: expected BUDGET=N with BUDGET in {list(BUDGETS)}, got {part!r}")
        max_batches[key] = int(value)
    random_seeds = [int(s) for s in args.random_seeds.split(",")]
    t0, c0 = time.perf_counter(), time.process_time()
    for budget in budgets:
        dirs = prepare(out, budget, random=args.random, max_nodes=args.max_nodes, sample_seed=list(BUDGETS).index(budget))
        if not args.no_train:
            train(dirs, seeds=seeds, random_seeds=random_seeds, epochs=args.epochs, max_batches=max_batches.get(budget),
                  eval_every=args.eval_every, recipe=args.recipe)
    done = [b for b in BUDGETS if (out / b).is_dir()]
    frame = collect(out, done)
    out.mkdir(parents=True, exist_ok=True)
    if not frame.empty:
        frame.drop(columns=["key", "spec"]).to_csv(out / "results.csv", index=False)
    summary = summarise(frame)
    summary["protocol"] = {"space": SPACE, "dataset": "fashion-mnist", "recipe": args.recipe, "epochs": args.epochs,
                           "max_batches": max_batches, "batch_size": 128, "seeds": seeds, "random_per_budget": args.random,
                           "random_seeds": random_seeds, "max_nodes": args.max_nodes, "threads": args.threads,
                           "budgets": {b: BUDGETS[b] for b in done}}
    summary["this_invocation"] = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1),
                                  "note": "wall time depends on the machine's load; CPU time less so"}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(markdown(summary, frame))
    if not args.no_report and not frame.empty:
        from archsearch.report import write_report

        runs = [out / b / k for b in done for k in ("designed", "baseline", "random") if (out / b / k / "candidates.json").is_file()]
        write_report(runs, out=out / "report.html", title="Search quality on Fashion-MNIST (deepmad-fmnist)")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
