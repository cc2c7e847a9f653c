"""Accuracy of the latency predictor on spaces not used in calibration; prints one JSON object.

Calibrates the blocks of one space (default ``deepmad-r50``; its calibration is not saved to the
user's cache), then for 30 random full-size designs of each test space (default ``deepmad-r18`` and
``deepmad-r34``: same block type, other width/depth ranges under their own MACs budgets) compares the
predicted whole-model latency with the measured one (whole model, batch 1, the same
``torch.utils.benchmark.Timer`` median of 30 runs). Reports the share of designs within +-10 %.

To keep the run to a few minutes on 2 cores everything runs at ``--resolution`` (default 128 px,
not the spaces' 224 px) with ``--threads`` (default 1) intra-op threads.
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
    parser.add_argument("--resolution", type=int, default=128)
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
    from archsearch.train.latency import calibrate_space, median_ms, random_cnn_design

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = calibrate_space(get_space(args.calibrate), threads=args.threads, samples=args.samples, runs=args.runs,
                            resolution=args.resolution, seed=args.seed, save=False)
    calib_s = time.perf_counter() - t0
    rng = random.Random(args.seed + 1)
    report = {"calibrated_on": args.calibrate, "calibration_s": round(calib_s, 1), "resolution": args.resolution,
              "threads": args.threads, "runs": args.runs, "fit": model.residuals, "spaces": {}}
    all_err = []
    for name in args.test.split(","):
        space = get_space(name)
        errs, rows = [], []
        while len(rows) < args.specs:
            prog, d = random_cnn_design(space, rng)
            spec = prog.to_spec(d)
            if space.budget.macs is not None and macs(spec) > space.budget.macs:
                continue  # full-size: within the space's own (224 px) MACs budget
            spec = type(spec)(spec.stem, spec.stages, args.resolution, spec.num_classes, spec.name)
            net = build_model(spec).eval()
            x = torch.randn(1, 3, args.resolution, args.resolution)
            measured = median_ms(net, x, runs=args.runs, warmup=5)
            predicted = predict_latency(spec, model)
            errs.append(predicted / measured - 1.0)
            rows.append({"measured_ms": round(measured, 3), "predicted_ms": round(predicted, 3), "depth": spec.depth,
                         "macs": macs(spec, with_head=True)})
        all_err += errs
        report["spaces"][name] = {
            "within_10pct": sum(abs(e) <= 0.10 for e in errs) / len(errs),
            "median_abs_rel_err": statistics.median(abs(e) for e in errs),
            "max_abs_rel_err": max(abs(e) for e in errs),
            "mean_rel_err": statistics.fmean(errs),
            "designs": rows,
        }
    report["within_10pct"] = sum(abs(e) <= 0.10 for e in all_err) / len(all_err)
    report["goal_within_10pct"] = 0.9
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
