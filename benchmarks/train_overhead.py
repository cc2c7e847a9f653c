"""Overhead of the trainer's step loop over a bare PyTorch loop; prints one JSON object.

Both loops train the same architecture (a solved ``deepmad-cifar`` candidate at 32 px, 4.84M MACs,
or ``--tiny``) from the same initial weights on the same digits images with AdamW and the same batch
size, timing only the training steps of each epoch:

* ``bare``: the images are normalised, resized and put on the device once; per step only
  ``zero_grad``, forward, cross-entropy, ``backward`` and ``step`` on a ``randperm`` slice;
* ``trainer``: :func:`archsearch.train.train` as ``validate`` runs it (uint8 batches converted,
  normalised, resized on the fly, autocast and ``GradScaler`` calls, LR schedule, loss
  accumulation), once with the recipe's augmentation and once without; its ``train_time_s``
  excludes evaluation and checkpoints, as the bare timing does.

Each variant runs ``--repeats`` times in turn and the fastest run counts (the machine may be
shared). Usage: ``python benchmarks/train_overhead.py [--epochs 2] [--threads 1] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import json
import time

QUICK_SPEC = {
    "family": "cnn", "stem": {"out_channels": 24, "in_channels": 3, "kernel": 3, "stride": 1},
    "stages": [
        {"block": "k1kxk1", "in_channels": 24, "out_channels": 24, "bottleneck": 8, "kernel": 3, "stride": 1, "depth": 1},
        {"block": "k1kxk1", "in_channels": 24, "out_channels": 48, "bottleneck": 8, "kernel": 5, "stride": 2, "depth": 1},
        {"block": "k1kxk1", "in_channels": 48, "out_channels": 192, "bottleneck": 16, "kernel": 5, "stride": 2, "depth": 2},
    ],
    "resolution": 32, "num_classes": 10, "name": "deepmad-cifar-1",
}
TINY_SPEC = {
    "family": "cnn", "stem": {"out_channels": 8, "kernel": 3, "stride": 1},
    "stages": [{"block": "k1kxk1", "in_channels": 8, "out_channels": 16, "bottleneck": 8, "kernel": 5, "stride": 2},
               {"block": "k1kxk1", "in_channels": 16, "out_channels": 16, "bottleneck": 8, "kernel": 5, "stride": 2}],
    "resolution": 16, "num_classes": 10, "name": "tiny",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiny", action="store_true", help="a 16 px two-stage CNN instead of the 4.8M-MAC candidate")
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    from archsearch import cost
    from archsearch.models import build_model
    from archsearch.space import spec_from_dict
    from archsearch.train import BatchTransform, get_dataset, get_recipe, resolve_device, train

    torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    spec = spec_from_dict(TINY_SPEC if args.tiny else QUICK_SPEC)
    data = get_dataset("digits", seed=0)
    recipe = get_recipe("quick").replace(epochs=args.epochs)
    torch.manual_seed(0)
    initial = build_model(spec, num_classes=10).state_dict()

    def fresh() -> torch.nn.Module:
        model = build_model(spec, num_classes=10)
        model.load_state_dict(initial)
        return model.to(dev)

    tf = BatchTransform(data.info, channels=3, resolution=spec.resolution, device=dev)
    x_all = tf(data.train.images, train=False)
    y_all = data.train.labels.to(dev)
    n, bs = len(y_all), recipe.batch_size
    steps = n // bs

    def bare() -> float:
        model = fresh().train()
        opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        gen = torch.Generator().manual_seed(0)
        total = 0.0
        for _ in range(args.epochs):
            perm = torch.randperm(n, generator=gen).to(dev)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            for i in range(steps):
                idx = perm[i * bs:(i + 1) * bs]
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x_all[idx]), y_all[idx]).backward()
                opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            total += time.perf_counter() - t0
        return total

    def trainer(augment: bool) -> float:
        return train(fresh(), data, recipe.replace(augment=augment), device=str(dev), latency=False).train_time_s

    times: dict[str, list[float]] = {"bare": [], "trainer": [], "trainer_no_augment": []}
    for _ in range(args.repeats):
        times["bare"].append(bare())
        times["trainer"].append(trainer(True))
        times["trainer_no_augment"].append(trainer(False))
    best = {k: min(v) for k, v in times.items()}
    images = steps * bs * args.epochs
    print(json.dumps({
        "model": spec.name, "macs": cost.macs(spec, with_head=True), "device": str(dev), "threads": args.threads,
        "epochs": args.epochs, "batch_size": bs, "images": images,
        "seconds": {k: round(v, 3) for k, v in best.items()},
        "images_per_s": {k: round(images / v, 1) for k, v in best.items()},
        "overhead_pct": round(100 * (best["trainer"] / best["bare"] - 1), 1),
        "overhead_no_augment_pct": round(100 * (best["trainer_no_augment"] / best["bare"] - 1), 1),
        "all_runs_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
    }, indent=2))


if __name__ == "__main__":
    main()
