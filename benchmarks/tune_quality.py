"""Does tuning DeepMAD's constants on a few short trainings give a program that designs better networks?

Issue 20's study on Fashion-MNIST (Debian's ``dataset-fashion-mnist``), the ``deepmad-fmnist`` space (28 px,
grey) and CPU training, in resumable pieces (every training is a trial of an Optuna study under ``--out``,
so a killed piece re-run with the same arguments trains only what is missing):

``tune``
    ``archsearch tune`` at two budgets (1M and 4M MACs; params at 1/20 of the MACs, as in the
    search-quality study) with at most ``--trials`` trials of short trainings (``--tune-epochs`` epochs of
    ``--tune-batches`` batches), which is at most ``2 * trials`` trainings (fewer: designs are trained once
    and pruned trials stop early). Writes ``OUT/tune/profile.json``.
``heldout``
    At the held-out budget (2M MACs; never seen while tuning), three designs trained with the full recipe
    (``--epochs`` epochs, ``--seeds`` seeds): the tuned program's top design, the default program's top
    design and the uniform baseline (the space's reference design scaled to the budget).
``rank``
    At the held-out budget, ``--random`` random designs of the space (one seed) beside the solver designs
    (the top ``--top-k`` of both programs): the Spearman rank correlation of each program's objective with
    trained top-1, each design scored by both programs.
``tpe``
    What the same trainings buy a plain Optuna TPE search over architectures directly: at the held-out
    budget itself (an advantage the tuned program did not have), as many short trainings as the tune ran,
    over the design variables (stem, width growth factors, inner-width fractions, kernels, depths: every
    draw is a design of the space; a design over the budget is not trained and is told ``1 - (its largest
    cost / budget ratio)``, below any top-1, so that TPE learns where the budget lies); its best design is
    then trained like the others.
``summary``
    Tables: mean +- sample std of top-1 per design, paired differences by seed with 95 % t intervals,
    the Spearman coefficients with 95 % bootstrap intervals (each program's objective, and beside them three
    zero-cost proxies on one batch of the data, NASWOT, synflow and the gradient norm, measured before any
    is offered as a term of the tuned objective), and the CPU hours of each piece; written as
    ``OUT/summary.json`` and ``OUT/summary.md`` (also printed).

Goals stated by the issue: the tuned design beats the default design and the baseline by >= 0.3 points at
the held-out budget, and the tuned objective's Spearman >= 0.8. The study reports what it measures either
way. Wall time depends on the machine; CPU time (``time.process_time``) is reported beside it. Run from the
repository root, e.g.::

    nohup python benchmarks/tune_quality.py tune > tune-quality-tune.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

SPACE = "deepmad-fmnist"
TUNE_BUDGETS = {"1M": "macs=1M,params=50K", "4M": "macs=4M,params=200K"}
HELDOUT = ("2M", "macs=2M,params=100K")
DATASET = "fashion-mnist"


def _cli(argv: list[str]) -> None:
    from search_quality import _cli as run

    run(argv)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _timed(out: Path, piece: str, fn: Any) -> None:
    """Runs a piece and adds its wall and CPU seconds to ``OUT/times.json`` (summed over re-runs), also
    when it is stopped: Ctrl-C, or a ``kill`` (SIGTERM, turned into an exit here so that the time is
    recorded; Python's default would end the process without it)."""
    import signal

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        fn()
    finally:
        path = out / "times.json"
        times = json.loads(path.read_text()) if path.is_file() else {}
        row = times.setdefault(piece, {"wall_s": 0.0, "cpu_s": 0.0})
        row["wall_s"] += time.perf_counter() - t0
        row["cpu_s"] += time.process_time() - c0
        from archsearch._files import atomic_write_text

        atomic_write_text(path, json.dumps(times, indent=2))


def tune(out: Path, args: argparse.Namespace) -> None:
    from archsearch.space import get_space
    from archsearch.space.budget import Budget
    from archsearch.study.tune import plan_tune, run_tune, tune_profile

    settings, url, name = plan_tune(space=get_space(SPACE), budgets=[Budget.parse(t) for t in TUNE_BUDGETS.values()],
                                    run_dir=out / "tune", dataset=DATASET, recipe=args.recipe, epochs=args.tune_epochs,
                                    seed=0, max_batches=args.tune_batches, trials=args.trials, max_nodes=args.max_nodes)
    summary = run_tune(study=name, storage=url, on_trial=lambda t: _log(
        f"trial {t['number']}: {t['state']} value {t['value']} constants {t['constants']}"))
    _log(json.dumps(summary.to_dict()))
    tune_profile(study=name, storage=url, out=out / "tune")


def _design_dirs(out: Path, args: argparse.Namespace) -> dict[str, Path]:
    """The held-out budget's run directories (made once; every command is deterministic)."""
    label, text = HELDOUT
    base = out / label
    dirs = {"tuned": base / "tuned", "default": base / "default", "baseline": base / "baseline"}
    profile = out / "tune" / "profile.json"
    common = ["--space", SPACE, "--budget", text, "--max-nodes", str(args.max_nodes), "--format", "json"]
    if not (dirs["default"] / "candidates.json").is_file():
        _cli(["solve", *common, "--top-k", str(args.top_k), "--name", f"{label}-default", "--out", str(dirs["default"])])
    if not (dirs["tuned"] / "candidates.json").is_file():
        if not profile.is_file():
            raise SystemExit(f"{profile}: run the tune piece first")
        _cli(["solve", *common, "--top-k", str(args.top_k), "--profile", str(profile), "--name", f"{label}-tuned",
              "--out", str(dirs["tuned"])])
    if not (dirs["baseline"] / "candidates.json").is_file():
        _cli(["baseline", "--space", SPACE, "--budget", text, "--scale", "uniform", "--name", f"{label}-baseline",
              "--out", str(dirs["baseline"]), "--format", "json"])
    return dirs


def _train(path: Path, args: argparse.Namespace, *, seeds: list[int], top_k: int | None) -> None:
    from archsearch.study import validate_run

    validate_run(path, dataset=DATASET, recipe=args.recipe, device="cpu", epochs=args.epochs, seeds=seeds, top_k=top_k,
                 latency=False, eval_every=args.epochs,
                 on_result=lambda r: _log(f"  {r['name']} seed {r['seed']}: top1 {100 * r['top1']:.2f} % ({r['status']})"))


def heldout(out: Path, args: argparse.Namespace) -> None:
    dirs = _design_dirs(out, args)
    for kind in ("tuned", "default", "baseline"):
        _train(dirs[kind], args, seeds=list(range(args.seeds)), top_k=1)


def rank(out: Path, args: argparse.Namespace) -> None:
    label, text = HELDOUT
    dirs = _design_dirs(out, args)
    rnd = out / label / "random"
    if not (rnd / "candidates.json").is_file():
        _cli(["sample", "--space", SPACE, "--budget", text, "-n", str(args.random), "--seed", "0",
              "--name", f"{label}-random", "--out", str(rnd), "--format", "json"])
    for kind in ("tuned", "default"):  # their top design has its seeds from `heldout`; the rest train once
        _train(dirs[kind], args, seeds=[0], top_k=args.top_k)
    _train(rnd, args, seeds=[0], top_k=None)


def tpe(out: Path, args: argparse.Namespace) -> None:
    """A TPE search over architectures at the held-out budget with as many short trainings as the tune ran."""
    import optuna

    from archsearch._files import atomic_write_text
    from archsearch.solvers import DeepMADProgram, Design
    from archsearch.space import get_space
    from archsearch.space.budget import Budget
    from archsearch.study import validate_run

    tuned = optuna.load_study(study_name=f"tune-{SPACE}/designs", storage=f"sqlite:///{out / 'tune' / 'study.db'}")
    n_train = sum(t.state.name == "COMPLETE" for t in tuned.trials)
    space = get_space(SPACE)
    label, text = HELDOUT
    budget = Budget.parse(text)
    prog = DeepMADProgram(space, budget)
    base = out / label / "tpe"
    base.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{base / 'tpe.db'}"
    study = optuna.create_study(study_name="tpe", storage=storage, direction="maximize", load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(seed=0))
    sp, m = space, prog.m

    def design(trial: optuna.Trial) -> Design:
        # every draw is a design of the space: each width a growth factor over the previous one (widths
        # non-decreasing, at most max_width_ratio x), each inner width a fraction of its allowed range; the
        # distributions are fixed, as TPE needs (a first version drew widths independently and refused
        # the draws outside the rules: 2 228 draws in a row refused at this budget)
        c0 = trial.suggest_int("c0", sp.stem_widths[0], sp.stem_widths[1], step=m)
        prev, cs, bs, ks, Ls = c0, [], [], [], []
        for i in range(prog.n):
            grow = trial.suggest_float(f"grow{i + 1}", 1.0, float(sp.max_width_ratio))
            c = min(sp.widths[1], max(prev, round(prev * grow / m) * m))
            lo, hi = prog.b_range(c)
            b = lo + round(trial.suggest_float(f"inner{i + 1}", 0.0, 1.0) * (hi - lo) / m) * m
            k = trial.suggest_categorical(f"k{i + 1}", list(sp.kernels))
            L = trial.suggest_int(f"L{i + 1}", sp.depths[0], sp.first_depth_max if i == 0 else sp.depths[1])
            cs.append(c), bs.append(b), ks.append(k), Ls.append(L)
            prev = c
        return Design(c0, tuple(cs), tuple(bs), tuple(ks), tuple(Ls))

    def trained() -> int:
        return sum(t.state.name == "COMPLETE" and bool(t.user_attrs.get("trained")) for t in study.trials)

    while trained() < n_train:
        trial = study.ask()
        d = design(trial)
        ev = prog.evaluate(d)
        if not prog.is_valid(d):
            raise AssertionError(f"the TPE parametrisation drew a design outside the space: {d}")
        if not ev.feasible:  # over the budget: not trained; told how far over, so TPE learns where the budget lies
            over = max(ev.macs / budget.macs, ev.params / budget.params)
            study.tell(trial, 1.0 - over)  # < 0: below every trained top-1
            continue
        run = base / f"t{trial.number}"
        spec = prog.to_spec(d, name=f"{label}-tpe-{trial.number}")
        if not (run / "candidates.json").is_file():
            run.mkdir(parents=True, exist_ok=True)
            atomic_write_text(run / "candidates.json", json.dumps({
                "status": "feasible", "space": SPACE, "name": run.name, "budget": budget.to_dict(),
                "candidates": [{"spec": spec.to_dict(), "score": ev.score, "macs": ev.macs, "params": ev.params}]}))
        rows = validate_run(run, dataset=DATASET, recipe=args.recipe, device="cpu", epochs=args.tune_epochs,
                            max_batches=args.tune_batches, seeds=[0], latency=False)
        trial.set_user_attr("trained", True)
        trial.set_user_attr("run", str(run))
        study.tell(trial, rows[0]["top1"])
        _log(f"tpe trial {trial.number}: top1 {100 * rows[0]['top1']:.2f} % ({trained()}/{n_train} trainings)")
    best = max((t for t in study.trials if t.user_attrs.get("trained")), key=lambda t: (t.value, -t.number))
    final = base / "best"
    if not (final / "candidates.json").is_file():
        final.mkdir(parents=True, exist_ok=True)
        data = json.loads((Path(best.user_attrs["run"]) / "candidates.json").read_text())
        data["name"] = "best"
        atomic_write_text(final / "candidates.json", json.dumps(data))
    _train(final, args, seeds=list(range(args.seeds)), top_k=1)


def _rows(path: Path) -> list[dict[str, Any]]:
    from archsearch.errors import ArchsearchError
    from archsearch.study import load_results

    if not (path / "study.db").is_file():
        return []
    try:
        return load_results(path)
    except ArchsearchError:
        return []


PROXIES = ("naswot", "synflow", "grad_norm")


def _proxy_scores(spec_dicts: list[dict[str, Any]], *, batch: int = 64, seed: int = 0) -> list[dict[str, float]]:
    """Zero-cost proxies of each design at initialisation, on one batch of the data (the first ``batch``
    training images in a seeded order, normalised by the dataset's statistics), weights seeded ``seed``:

    * ``naswot`` (Mellor et al., "Neural Architecture Search without Training", ICML 2021): the log
      determinant of the kernel ``K = C C^T + (1 - C)(1 - C)^T`` of the images' binary ReLU codes;
    * ``synflow`` (Tanaka et al., NeurIPS 2020, as a NAS proxy by Abdelfattah et al., ICLR 2021): the sum of
      ``|theta * dR/dtheta|`` with ``R`` the sum of the outputs of the network with absolute weights on an
      all-ones input, in float64, BatchNorm in eval mode (its initial statistics: an identity map);
    * ``grad_norm``: the sum over parameters of the L2 norm of the cross-entropy gradient on the batch.
    """
    import copy

    import numpy as np
    import torch

    from archsearch.models import build_model
    from archsearch.space import spec_from_dict
    from archsearch.train.datasets import BatchTransform, get_dataset

    data = get_dataset(DATASET)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data.train), generator=gen)[:batch].tolist()
    x8, y = next(data.train.batches(idx, batch))
    out = []
    for sd in spec_dicts:
        torch.manual_seed(seed)
        model = build_model(spec_from_dict(sd))
        # the model's input as the trainer evaluates it (normalised, at the model's size and channels)
        channels, side = model.pretrained_cfg["input_size"][0], model.pretrained_cfg["input_size"][-1]
        x = BatchTransform(data.info, channels=channels, resolution=side, device=torch.device("cpu"))(x8, train=False)
        row: dict[str, float] = {}
        # NASWOT: binary codes of every ReLU's output, per image
        codes: list[torch.Tensor] = []
        hooks = [m.register_forward_hook(lambda _m, _i, o, codes=codes: codes.append((o.detach() > 0).flatten(1).double()))
                 for m in model.modules() if isinstance(m, torch.nn.ReLU)]
        model.train()
        with torch.no_grad():
            model(x)
        for h in hooks:
            h.remove()
        c = torch.cat(codes, 1)
        k = c @ c.T + (1 - c) @ (1 - c).T
        row["naswot"] = float(torch.linalg.slogdet(k)[1])
        # grad norm
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            row["grad_norm"] = float(sum(p.grad.norm() for p in model.parameters() if p.grad is not None))
        # synflow
        m64 = copy.deepcopy(model).double().eval()
        with torch.no_grad():
            for p_ in m64.parameters():
                p_.abs_()
        m64.zero_grad()
        m64(torch.ones(1, *x.shape[1:], dtype=torch.float64)).sum().backward()
        with torch.no_grad():
            flow = float(sum((p_ * p_.grad).abs().sum() for p_ in m64.parameters() if p_.grad is not None))
        row["synflow"] = float(np.log(flow)) if flow > 0 else float("-inf")  # the log: a monotone map
        out.append(row)
    return out


def summary(out: Path, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from archsearch.solvers import DeepMADProgram
    from archsearch.solvers.profile import read_profile
    from archsearch.space import get_space, spec_from_dict
    from archsearch.space.budget import Budget
    from search_quality import _spearman_ci, _t95

    label, text = HELDOUT
    base = out / label
    res: dict[str, Any] = {"space": SPACE, "dataset": DATASET, "tune_budgets": TUNE_BUDGETS, "heldout_budget": text,
                           "recipe": args.recipe, "epochs": args.epochs, "seeds": args.seeds}
    profile_path = out / "tune" / "profile.json"
    profile = read_profile(profile_path) if profile_path.is_file() else None
    if profile is not None:
        res["profile"] = {"constants": profile.constants, "evidence": profile.evidence}
    kinds = {"tuned": base / "tuned", "default": base / "default", "baseline": base / "baseline", "tpe": base / "tpe" / "best"}
    top = {}
    for kind, path in kinds.items():
        rows = _rows(path)
        first = None
        cands = json.loads((path / "candidates.json").read_text())["candidates"] if (path / "candidates.json").is_file() else []
        if cands:
            first = cands[0]["spec"].get("name")
        by_seed = {r["seed"]: 100 * r["top1"] for r in rows if r["name"] == first and r["epochs"] == args.epochs}
        if by_seed:
            v = np.array(list(by_seed.values()))
            top[kind] = by_seed
            res.setdefault("heldout", {})[kind] = {"design": first, "top1_mean": round(float(v.mean()), 3),
                                                   "top1_std": round(float(v.std(ddof=1)), 3) if len(v) > 1 else None,
                                                   "n": len(v)}
    for a, b in (("tuned", "default"), ("tuned", "baseline"), ("tuned", "tpe"), ("default", "baseline")):
        if a in top and b in top:
            seeds = sorted(set(top[a]) & set(top[b]))
            d = np.array([top[a][s] - top[b][s] for s in seeds])
            if len(d) > 1:
                half = _t95(len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
                res.setdefault("paired", {})[f"{a} - {b}"] = {"mean": round(float(d.mean()), 3),
                                                              "ci95": [round(float(d.mean() - half), 3), round(float(d.mean() + half), 3)],
                                                              "n": len(d)}
    # rank quality: every held-out design with a one-seed training at the full recipe, scored by both programs
    space = get_space(SPACE)
    budget = Budget.parse(text)
    progs = {"default": DeepMADProgram(space, budget)}
    if profile is not None:
        progs["tuned"] = DeepMADProgram(space, budget, **profile.constants)
    designs: dict[str, tuple[float, dict[str, Any]]] = {}
    for kind in ("tuned", "default", "random"):
        path = base / kind
        cands = {c["spec"].get("name"): c["spec"] for c in json.loads((path / "candidates.json").read_text())["candidates"]} \
            if (path / "candidates.json").is_file() else {}
        for r in _rows(path):
            if r["seed"] == 0 and r["epochs"] == args.epochs and r["name"] in cands:
                spec = cands[r["name"]]
                designs[json.dumps({k: v for k, v in spec.items() if k != "name"}, sort_keys=True)] = (100 * r["top1"], spec)
    if len(designs) >= 3:
        top1 = [t for t, _ in designs.values()]
        for name, prog in progs.items():
            scores = [prog.evaluate(prog.from_spec(spec_from_dict(s))).score for _, s in designs.values()]
            res.setdefault("spearman", {})[name] = _spearman_ci(scores, top1)
        # zero-cost proxies on one batch of the data: measured beside the objectives, not offered in `tune`
        # unless one ranks better (issue 20)
        proxy_rows = _proxy_scores([s for _, s in designs.values()])
        for proxy in PROXIES:
            res["spearman"][f"proxy: {proxy}"] = _spearman_ci([r[proxy] for r in proxy_rows], top1)
    times = json.loads((out / "times.json").read_text()) if (out / "times.json").is_file() else {}
    res["cpu_hours"] = {k: round(v["cpu_s"] / 3600, 3) for k, v in times.items()}
    res["wall_hours"] = {k: round(v["wall_s"] / 3600, 3) for k, v in times.items()}
    return res


def markdown(res: dict[str, Any]) -> str:
    lines = [f"Held-out budget {res['heldout_budget']} (tuned at {', '.join(res['tune_budgets'].values())}); "
             f"{res['recipe']} recipe, {res['epochs']} epochs, top-1 % as mean ± sample std over seeds.", "",
             "| design | top-1 % | n |", "|---|---|---|"]
    for kind, row in res.get("heldout", {}).items():
        std = "" if row["top1_std"] is None else f" ± {row['top1_std']:.2f}"
        lines.append(f"| {kind} ({row['design']}) | {row['top1_mean']:.2f}{std} | {row['n']} |")
    lines += ["", "| paired by seed | mean | 95 % CI | n |", "|---|---|---|---|"]
    for name, row in res.get("paired", {}).items():
        lines.append(f"| {name} | {row['mean']:+.2f} | [{row['ci95'][0]:+.2f}, {row['ci95'][1]:+.2f}] | {row['n']} |")
    lines += ["", "| objective | Spearman with top-1 | 95 % bootstrap CI | n |", "|---|---|---|---|"]
    for name, row in res.get("spearman", {}).items():
        ci = "—" if row["ci95"] is None else f"[{row['ci95'][0]:+.2f}, {row['ci95'][1]:+.2f}]"
        lines.append(f"| {name} | {row['rho']:+.3f} | {ci} | {row['n']} |")
    if res.get("profile"):
        lines += ["", f"Tuned constants: {json.dumps(res['profile']['constants'])}"]
    lines += ["", f"CPU hours by piece: {json.dumps(res.get('cpu_hours', {}))}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from archsearch._threads import prefer_passive_wait

    prefer_passive_wait()  # it times no latency: idle CPU threads may sleep (archsearch._threads)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("piece", choices=("tune", "heldout", "rank", "tpe", "summary"))
    parser.add_argument("--out", type=Path, default=Path("reports/tuned"))
    parser.add_argument("--recipe", default="fmnist")
    parser.add_argument("--trials", type=int, default=20, help="tune trials (at most 2 trainings each; default 20)")
    parser.add_argument("--tune-epochs", type=int, default=2, help="epochs of a tuning training (default 2)")
    parser.add_argument("--tune-batches", type=int, default=100, help="batches an epoch of a tuning training (default 100)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of the full recipe (default 4, as the search-quality study)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--random", type=int, default=14, help="random designs of the rank piece (default 14)")
    parser.add_argument("--top-k", type=int, default=4, help="solver designs of each program in the rank piece (default 4)")
    parser.add_argument("--max-nodes", type=int, default=300)
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.piece == "summary":
        res = summary(out, args)
        from archsearch._files import atomic_write_text

        atomic_write_text(out / "summary.json", json.dumps(res, indent=2))
        atomic_write_text(out / "summary.md", markdown(res))
        print(json.dumps(res, indent=2))
        return 0
    _timed(out, args.piece, lambda: {"tune": tune, "heldout": heldout, "rank": rank, "tpe": tpe}[args.piece](out, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
