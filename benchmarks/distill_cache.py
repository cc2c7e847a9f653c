"""Online distillation vs the teacher cache (TinyViT fast distillation); prints one JSON object.

The same student (a solved ``deepmad-cifar`` candidate at 32 px, 4.84M MACs) trains for one epoch
from the same initial weights with the ``quick`` recipe, through :func:`archsearch.train.train`:

* ``online``: the target provider runs the teacher's forward pass on every batch
  (:class:`~archsearch.train.teacher.OnlineTeacher`: the replayed augmented images at the teacher's
  resolution, softmax, the same top-K sparse soft labels a cache would give);
* ``cache``: the provider reads the batch's records from a memory-mapped cache made beforehand by
  :func:`~archsearch.train.teacher.build_cache` (its one-off cost is reported as ``cache_build_s``);
* ``plain``: hard labels, no teacher (the floor).

The teacher is a wider and deeper CNN spec (``--teacher-scale``); its MACs ratio to the student is
reported and must be >= 4. Only the training steps are timed (``train_time_s``, evaluation excluded);
each variant runs ``--repeats`` times in turn and the fastest run counts (the machine may be shared).

Usage: ``python benchmarks/distill_cache.py [--dataset digits|fashion-mnist] [--device cpu|cuda] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

STUDENT = {
    "family": "cnn", "stem": {"out_channels": 24, "in_channels": 3, "kernel": 3, "stride": 1},
    "stages": [
        {"block": "k1kxk1", "in_channels": 24, "out_channels": 24, "bottleneck": 8, "kernel": 3, "stride": 1, "depth": 1},
        {"block": "k1kxk1", "in_channels": 24, "out_channels": 48, "bottleneck": 8, "kernel": 5, "stride": 2, "depth": 1},
        {"block": "k1kxk1", "in_channels": 48, "out_channels": 192, "bottleneck": 16, "kernel": 5, "stride": 2, "depth": 2},
    ],
    "resolution": 32, "num_classes": 10, "name": "deepmad-cifar-1",
}


def teacher_spec(scale: int) -> dict:
    """The student's layout, ``scale`` times as wide in every bottleneck and twice as deep at the end."""
    spec = json.loads(json.dumps(STUDENT))
    spec["stem"]["out_channels"] = 24 * scale
    for i, stage in enumerate(spec["stages"]):
        stage["in_channels"] = spec["stem"]["out_channels"] if i == 0 else spec["stages"][i - 1]["out_channels"]
        stage["out_channels"] *= scale
        stage["bottleneck"] *= scale
    spec["stages"][-1]["depth"] *= 2
    spec["name"] = f"teacher-x{scale}"
    return spec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--teacher-scale", type=int, nargs="+", default=[2, 3],
                        help="teachers to compare (default 2 3: 5.1x and 11.2x the student's MACs)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the quick recipe's (64)")
    parser.add_argument("--max-batches", type=int, default=None, help="cap the epoch (large datasets on CPU)")
    args = parser.parse_args()

    import torch

    from archsearch import cost
    from archsearch.models import build_model
    from archsearch.space import spec_from_dict
    from archsearch.train import OnlineTeacher, TeacherCache, build_cache, get_dataset, get_recipe, load_teacher, resolve_device, train

    torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    data = get_dataset(args.dataset, seed=0)
    recipe = get_recipe("quick").replace(epochs=1)
    if args.batch_size:
        recipe = recipe.replace(batch_size=args.batch_size)
    student_spec = spec_from_dict(STUDENT)
    student_macs = cost.macs(student_spec, with_head=True)
    torch.manual_seed(0)
    initial = build_model(student_spec, num_classes=10).state_dict()
    n = len(data.train)

    def one(targets: object) -> float:
        model = build_model(student_spec, num_classes=10)
        model.load_state_dict(initial)
        result = train(model, data, recipe, seed=0, device=str(dev), latency=False, targets=targets,  # type: ignore[arg-type]
                       max_batches=args.max_batches)
        return result.train_time_s

    teachers = []
    for scale in args.teacher_scale:
        t_spec = spec_from_dict(teacher_spec(scale))
        with tempfile.TemporaryDirectory() as tmp:
            spec_path = Path(tmp) / "teacher.json"
            spec_path.write_text(json.dumps(t_spec.to_dict()))
            torch.manual_seed(1)
            teacher, identity = load_teacher(str(spec_path), num_classes=10, random_weights=True)  # timing only
            t0 = time.perf_counter()
            header = build_cache(teacher=teacher, identity=identity, data=data, out=Path(tmp) / "cache", epochs=1,
                                 topk=args.topk, seed=0, device=str(dev), batch_size=recipe.batch_size)
            build_s = time.perf_counter() - t0
            cache = TeacherCache(Path(tmp) / "cache")
            cache.check(data, epochs=1, augment=recipe.augment)
            online = OnlineTeacher(teacher, data, seed=0, topk=args.topk, device=dev)
            times: dict[str, list[float]] = {"online": [], "cache": [], "plain": []}
            one(cache)  # warm-up: allocator, kernels, page cache
            for _ in range(args.repeats):
                for name, targets in (("online", online), ("cache", cache), ("plain", None)):
                    times[name].append(one(targets))
            cache_bytes = (Path(tmp) / "cache" / "records.npy").stat().st_size
        best = {k: min(v) for k, v in times.items()}
        teachers.append({
            "teacher": t_spec.name, "teacher_macs": identity["macs"], "macs_ratio": round(identity["macs"] / student_macs, 2),
            "online_s": round(best["online"], 3), "cache_s": round(best["cache"], 3), "plain_s": round(best["plain"], 3),
            "speedup": round(best["online"] / best["cache"], 2),
            # online = student steps + teacher forwards; the cache can at most remove the second term
            "teacher_share_of_online": round(1 - best["plain"] / best["online"], 3),
            "cache_overhead_vs_plain": round(best["cache"] / best["plain"] - 1, 3),
            "cache_build_s": round(build_s, 3), "record_bytes": header["record_bytes"],
            "cache_bytes_per_image_per_epoch": round(cache_bytes / n, 2),
            "runs_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
        })
    print(json.dumps({
        "dataset": args.dataset, "train_images": n, "device": str(dev), "threads": args.threads,
        "batch_size": recipe.batch_size, "max_batches": args.max_batches, "topk": args.topk, "repeats": args.repeats,
        "student": STUDENT["name"], "student_macs": student_macs, "goal_speedup": 1.8, "teachers": teachers,
    }, indent=2))


if __name__ == "__main__":
    main()
