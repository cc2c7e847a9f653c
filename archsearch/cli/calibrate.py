"""``archsearch calibrate``: time a space's building blocks and whole random models on this device and fit
the latency predictor that solvers read (:mod:`archsearch.cost.latency`)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from archsearch.cli._output import (
    EXIT_OK,
    err,
    fmt,
    print_json,
    print_table,
    stderr_console,
)
from archsearch.cli._progress import count_progress
from archsearch.errors import SpecError

__all__ = ["cmd_calibrate", "register_calibrate"]


def register_calibrate(sub: Any) -> None:
    p = sub.add_parser("calibrate", help="time a space's building blocks on this device and fit its latency predictor")
    p.add_argument("--space", required=True, help="search space to calibrate (deepmad-*, nvit, revit*, stvit*, mci, tinyvit* spaces)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--batch", type=int, default=1, help="batch size of the timings (default 1)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--samples", type=int, default=48, help="blocks to time (default 48; stems and heads: 1/8 each)")
    p.add_argument("--runs", type=int, default=30, help="timed runs per block and model (default 30, at least 30)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved passes over all blocks and models the runs are spread "
                                                         "over (default 3)")
    p.add_argument("--statistic", choices=("median", "p25", "min"), default="median",
                   help="what is kept of each block's runs (default median; min, then p25, are the reproducible ones "
                        "on a shared machine, and min gives the most accurate predictor there)")
    p.add_argument("--models", type=int, default=24, help="whole random models to time (default 24)")
    p.add_argument("--fit", choices=("joint", "blocks"), default="joint",
                   help="joint: coefficients fitted to block and whole-model timings at once (default); "
                        "blocks: to blocks alone, whole models give a scale")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (results and errors still print)")
    p.set_defaults(func=cmd_calibrate, runs_min=30)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from archsearch.cost.latency import latency_model_path
    from archsearch.space import get_space

    space = get_space(args.space)
    if args.runs < args.runs_min:
        raise SpecError(f"--runs: expected an integer >= {args.runs_min}, got {args.runs}")
    from archsearch.train.latency import calibrate_space

    t0 = time.perf_counter()
    kwargs = dict(device=args.device, batch=args.batch, threads=args.threads, samples=args.samples, runs=args.runs, seed=args.seed,
                  models=args.models, fit=args.fit, rounds=args.rounds, statistic=args.statistic)
    bar_on, lines = count_progress(args, f"timing {space.name} blocks", "timings")
    if bar_on:
        from rich.progress import Progress

        with Progress(transient=True, console=stderr_console()) as bar:
            task = bar.add_task(f"timing {space.name} blocks", total=None)
            model = calibrate_space(space, progress=lambda done, total: bar.update(task, completed=done, total=total), **kwargs)
    else:
        model = calibrate_space(space, **kwargs, **({} if lines is None else {"progress": lines}))
    wall = time.perf_counter() - t0
    path = latency_model_path(space.name, args.device)
    if args.format == "json":
        print_json({"path": str(path), "wall_time_s": round(wall, 3), **model.to_dict()})
    else:
        rows = [(unit, *(f"{c:.4g}" for c in model.coefs[unit]), int(r["n"]), fmt(r["rms_rel"], "pct"), fmt(r["max_rel"], "pct"))
                for unit, r in model.residuals.items() if unit in model.coefs]
        print_table(f"{space.name} on {model.device_name} ({model.threads} threads, batch {model.batch}, {model.resolution} px)",
                    ["unit", "a ms", "b ms/1x1-MMAC", "c ms/kxk-MMAC", "d ms/dw-MMAC", "e ms/Mact", "f ms/Mweight", "n", "rms rel", "max rel"], rows,
                    caption=f"latency ({model.statistic} of {model.runs} runs) = scale x sum over units of (a + b 1x1 MACs + c kxk MACs "
                            f"+ d depthwise MACs + e activations + f weights)"
                            + (f", conv channels rounded up to {model.channel_block} in the MACs" if model.channel_block > 1 else "")
                            + (f", a kxk MAC counting (k²/9)^{-model.kernel_exponent:g}" if model.kernel_exponent else "")
                            + "; "
                            f"fit {args.fit} with {int(model.residuals.get('model', {}).get('n', 0))} whole models"
                            + (f", rms {model.residuals['model']['rms_rel']:.1%} on them" if 'rms_rel' in model.residuals.get('model', {}) else "")
                            + f", scale {model.scale:.3f} · {wall:.1f} s")
        err(f"wrote {path}")
    return EXIT_OK
