"""Accuracy of the latency predictor on spaces not used in calibration; prints one JSON object.

Draws 30 random full-size designs of each test space (default ``deepmad-r18`` and ``deepmad-r34``: same
block type, other width/depth ranges under their own MACs budgets), then calibrates one space (default
``deepmad-r50``; nothing is saved to the user's cache): times its units and a few whole random models
in interleaved rounds and keeps every call. The predictor is fitted from those calls for every timing
statistic (``median``, ``p25``, ``min``: :mod:`archsearch.train.timing`) and both fits (``joint``: the
default, unit fits corrected in context by the whole models; ``blocks``: unit fits and a scalar scale),
so every fit and statistic is judged on the same calls.

``--protocol interleaved`` (default): the test models are timed in the calibration's own rounds, so the
calibration and the test measurements see the same states of the machine (on a shared virtual machine
a slow spell of minutes otherwise shifts every test model against the calibration). A test model's
two measurements are its calls of the even and of the odd rounds. ``--protocol separate``: the test
models are timed after the calibration, in two passes. Either way the prediction is compared with the
statistic of both measurements' calls, and the agreement of the two measurements with each other
(``repeat_within_10pct``) is the ceiling any predictor can be shown to reach on this machine at that
statistic.

Runs at the spaces' resolution (224 px) unless ``--resolution`` is given, with ``--threads`` (default 1)
intra-op threads. Usage (from the repository root):
``PYTHONPATH=. python benchmarks/latency_accuracy.py [--calibrate deepmad-r50] [--test deepmad-r18,deepmad-r34]``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calibrate", default="deepmad-r50")
    parser.add_argument("--test", default="deepmad-r18,deepmad-r34")
    parser.add_argument("--specs", type=int, default=30)
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--models", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--protocol", choices=("interleaved", "separate"), default="interleaved",
                        help="interleaved: the test models are timed in the calibration's rounds; separate: after it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dump", default=None, help="also write every timed call (calibration and test designs) to this JSON file")
    args = parser.parse_args()

    import torch

    from archsearch.models import build_model
    from archsearch.cost import macs
    from archsearch.cost.latency import predict_latency
    from archsearch.space import get_space
    from archsearch.train.latency import FITS, fit_calibration, measure_calibration, random_cnn_design
    from archsearch.train.timing import STATISTICS, forward_samples, summarise_ms

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    calibrated = get_space(args.calibrate)
    res = args.resolution or calibrated.resolution
    rng = random.Random(args.seed + 1)
    tests: dict[str, list] = {}
    for name in args.test.split(","):
        space = get_space(name)
        specs = tests.setdefault(name, [])
        while len(specs) < args.specs:
            prog, d = random_cnn_design(space, rng)
            spec = prog.to_spec(d)
            if space.budget.macs is not None and macs(spec) > space.budget.macs:
                continue  # full-size: within the space's own (224 px) MACs budget
            specs.append(type(spec)(spec.stem, spec.stages, res, spec.num_classes, spec.name))
    all_specs = [spec for specs in tests.values() for spec in specs]
    if args.protocol == "interleaved":
        # the test models are timed in the calibration's own rounds: both see the same machine states.
        # The two measurements of a test model are its calls of the even and of the odd rounds
        items = [(build_model(spec).eval(), torch.randn(1, 3, res, res)) for spec in all_specs]
        data = measure_calibration(calibrated, threads=args.threads, samples=args.samples, runs=args.runs,
                                   rounds=args.rounds, resolution=res, models=args.models, seed=args.seed, extra=items)
        del items
        per_round = math.ceil(args.runs / min(args.rounds, args.runs))
        halves = [([c for r in range(0, len(calls), per_round) if (r // per_round) % 2 == 0 for c in calls[r:r + per_round]],
                   [c for r in range(0, len(calls), per_round) if (r // per_round) % 2 == 1 for c in calls[r:r + per_round]])
                  for calls in data.extra_calls]
    else:  # calibrate first, then two interleaved passes over the test models
        data = measure_calibration(calibrated, threads=args.threads, samples=args.samples, runs=args.runs, rounds=args.rounds,
                                   resolution=res, models=args.models, seed=args.seed)
        halves = []
        for specs in tests.values():
            items = [(build_model(spec).eval(), torch.randn(1, 3, res, res)) for spec in specs]
            first = forward_samples(items, runs=args.runs, warmup=5, rounds=args.rounds)
            second = forward_samples(items, runs=args.runs, warmup=1, rounds=args.rounds)
            halves += list(zip(first, second))
            del items
    fitted = {(stat, fit): fit_calibration(data.summarised(stat), fit=fit) for stat in STATISTICS for fit in FITS}
    report = {"calibrated_on": args.calibrate, "protocol": args.protocol, "timing_s": round(time.perf_counter() - t0, 1),
              "resolution": res, "threads": args.threads, "runs": args.runs, "rounds": args.rounds,
              "whole_models_in_calibration": args.models,
              "fit": {f"{stat}/{fit}": m.residuals for (stat, fit), m in fitted.items()},
              "counting": {f"{stat}/{fit}": f"{m.channel_block}/{m.kernel_exponent:g}" for (stat, fit), m in fitted.items()},
              "spaces": {}}
    dump = {"unit_features": data.unit_features, "model_features": data.model_features, "calls": data.calls, "tests": []}
    errors: dict[tuple[str, str], list[float]] = {key: [] for key in fitted}
    repeat: dict[str, list[float]] = {stat: [] for stat in STATISTICS}
    at = 0
    for name, specs in tests.items():
        first = [h[0] for h in halves[at:at + len(specs)]]
        second = [h[1] for h in halves[at:at + len(specs)]]
        at += len(specs)
        if args.dump:
            from archsearch.cost.latency import model_units, summed_features

            dump["tests"] += [{"space": name, "features": summed_features(list(model_units(spec))), "calls": [a, b]}
                              for spec, a, b in zip(specs, first, second)]
        rows = []
        for spec, a, b in zip(specs, first, second):
            row = {"depth": spec.depth, "macs": macs(spec, with_head=True)}
            for stat in STATISTICS:
                measured = summarise_ms(a + b, stat)
                again = summarise_ms(b, stat) / summarise_ms(a, stat) - 1.0
                repeat[stat].append(again)
                row[f"measured_ms_{stat}"] = round(measured, 3)
                row[f"repeat_rel_diff_{stat}"] = round(again, 4)
                for fit in FITS:
                    predicted = predict_latency(spec, fitted[(stat, fit)])
                    row[f"rel_err_{stat}/{fit}"] = round(predicted / measured - 1.0, 4)
                    errors[(stat, fit)].append(predicted / measured - 1.0)
            rows.append(row)
        entry: dict = {}
        for stat in STATISTICS:
            diffs = [r[f"repeat_rel_diff_{stat}"] for r in rows]
            entry[f"repeat_within_10pct_{stat}"] = sum(abs(e) <= 0.10 for e in diffs) / len(diffs)
            for fit in FITS:
                errs = [r[f"rel_err_{stat}/{fit}"] for r in rows]
                entry[f"{stat}/{fit}"] = {"within_10pct": sum(abs(e) <= 0.10 for e in errs) / len(errs),
                                          "median_abs_rel_err": statistics.median(abs(e) for e in errs),
                                          "max_abs_rel_err": max(abs(e) for e in errs), "mean_rel_err": statistics.fmean(errs)}
        entry["designs"] = rows
        report["spaces"][name] = entry
    report["within_10pct"] = {f"{stat}/{fit}": sum(abs(e) <= 0.10 for e in errs) / len(errs) for (stat, fit), errs in errors.items()}
    report["median_abs_rel_err"] = {f"{stat}/{fit}": statistics.median(abs(e) for e in errs) for (stat, fit), errs in errors.items()}
    report["repeat_within_10pct"] = {stat: sum(abs(e) <= 0.10 for e in d) / len(d) for stat, d in repeat.items()}
    report["goal_within_10pct"] = 0.9
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    if args.dump:
        with open(args.dump, "w") as fh:
            json.dump(dump, fh)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
