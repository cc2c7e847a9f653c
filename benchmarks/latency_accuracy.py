"""Accuracy of the latency predictor on spaces not used in calibration; prints one JSON object.

Times the units and a few whole random models of one space once (default ``deepmad-r50``; nothing is
saved to the user's cache) and fits the predictor from those timings both ways (``joint``: the default,
unit fits corrected in context by the whole models; ``blocks``: unit fits and a scalar scale), then for
30 random full-size designs of each test space (default ``deepmad-r18`` and ``deepmad-r34``: same
block type, other width/depth ranges under their own MACs budgets) compares each fit's predicted
whole-model latency with the measured one (whole model, batch 1, the same ``torch.utils.benchmark.Timer``
median of 30 runs). Reports the share of designs within +-10 % per fit, so the two are compared on the
same measurements.

Runs at the spaces' resolution (224 px) unless ``--resolution`` is given, with ``--threads`` (default 1)
intra-op threads; a quiet machine matters (other processes inflate single timings by tens of percent).
Usage (from the repository root): ``PYTHONPATH=. python benchmarks/latency_accuracy.py [--calibrate deepmad-r50] [--test deepmad-r18,deepmad-r34]``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calibrate", default="deepmad-r50")
    parser.add_argument("--test", default="deepmad-r18,deepmad-r34")
    parser.add_argument("--specs", type=int, default=30)
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--models", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from archsearch.build import build_model
    from archsearch.cost import macs
    from archsearch.cost.latency import predict_latency
    from archsearch.space import get_space
    from archsearch.train.latency import FITS, fit_calibration, measure_calibration, median_ms, random_cnn_design

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    calibrated = get_space(args.calibrate)
    res = args.resolution or calibrated.resolution
    data = measure_calibration(calibrated, threads=args.threads, samples=args.samples, runs=args.runs, resolution=res,
                               models=args.models, seed=args.seed)
    fitted = {fit: fit_calibration(data, fit=fit) for fit in FITS}
    calib_s = time.perf_counter() - t0
    rng = random.Random(args.seed + 1)
    report = {"calibrated_on": args.calibrate, "calibration_s": round(calib_s, 1), "resolution": res,
              "threads": args.threads, "runs": args.runs, "whole_models_in_calibration": args.models,
              "fit": {fit: m.residuals for fit, m in fitted.items()}, "spaces": {}}
    errors: dict[str, list[float]] = {fit: [] for fit in FITS}
    for name in args.test.split(","):
        space = get_space(name)
        rows = []
        while len(rows) < args.specs:
            prog, d = random_cnn_design(space, rng)
            spec = prog.to_spec(d)
            if space.budget.macs is not None and macs(spec) > space.budget.macs:
                continue  # full-size: within the space's own (224 px) MACs budget
            spec = type(spec)(spec.stem, spec.stages, res, spec.num_classes, spec.name)
            net = build_model(spec).eval()
            measured = median_ms(net, torch.randn(1, 3, res, res), runs=args.runs, warmup=5)
            row = {"measured_ms": round(measured, 3), "depth": spec.depth, "macs": macs(spec, with_head=True)}
            for fit, model in fitted.items():
                predicted = predict_latency(spec, model)
                row[f"predicted_ms_{fit}"] = round(predicted, 3)
                row[f"rel_err_{fit}"] = round(predicted / measured - 1.0, 4)
            rows.append(row)
        entry: dict = {}
        for fit in FITS:
            errs = [r[f"rel_err_{fit}"] for r in rows]
            errors[fit] += errs
            entry[fit] = {"within_10pct": sum(abs(e) <= 0.10 for e in errs) / len(errs),
                          "median_abs_rel_err": statistics.median(abs(e) for e in errs),
                          "max_abs_rel_err": max(abs(e) for e in errs), "mean_rel_err": statistics.fmean(errs)}
        entry["designs"] = rows
        report["spaces"][name] = entry
    report["within_10pct"] = {fit: sum(abs(e) <= 0.10 for e in errs) / len(errs) for fit, errs in errors.items()}
    report["median_abs_rel_err"] = {fit: statistics.median(abs(e) for e in errs) for fit, errs in errors.items()}
    report["goal_within_10pct"] = 0.9
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(report, indent=1))

if __name__ == "__main__":
    main()
