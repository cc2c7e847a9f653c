"""Overhead of the trainer against timm's own train.py loop (and a bare PyTorch loop); prints one JSON object.

Every variant trains the same architecture (a solved ``deepmad-cifar`` candidate at 32 px, 4.84M MACs, or
``--tiny``) from the same initial weights with the same batch size, and times only the training steps of
each epoch, by the wall clock (``time.perf_counter``) and by this process's CPU time
(``time.process_time``: on a shared machine the figure other processes do not inflate). Two settings:

* ``batch``: the ``quick`` recipe on the digits images (the batch pipeline: in-memory uint8 images,
  crop and flip drawn for the whole batch). Variants:

  - ``bare``: the images normalised, resized and put on the device once; per step only ``zero_grad``,
    forward, cross-entropy, ``backward`` and ``step`` on a ``randperm`` slice;
  - ``timm_loop``: timm's ``train.py`` ``train_one_epoch`` (``create_optimizer_v2``,
    ``create_scheduler_v2`` stepped per update, the autocast context, ``loss.item()`` every step for its
    loss meter) fed the same augmented batches (:class:`~archsearch.train.BatchTransform`; timm has no
    batched pipeline);
  - ``trainer``: :func:`archsearch.train.train` as ``validate`` runs it (its ``train_time_s`` and
    ``train_cpu_s`` exclude evaluation and checkpoints).

* ``timm``: a DeiT-style recipe (RandAugment, random erasing, Mixup/CutMix with label smoothing, EMA,
  AdamW, cosine with warm-up) on a generated image folder (``--images`` per class, 10 classes, 40 px
  JPEGs), per-image transforms in the training process (no loader workers, so the CPU time is all
  here). Variants:

  - ``timm_loop``: timm's ``train.py``: ``create_dataset`` + ``create_loader`` (its transforms),
    ``Mixup``, ``SoftTargetCrossEntropy``, ``ModelEmaV3``, the optimiser and schedule as above;
  - ``trainer``: :func:`archsearch.train.train` with the same recipe on the same folder.

Each variant runs ``--repeats`` times in turn and the fastest run counts. The overheads are the
trainer's time over timm's loop (and, for ``batch``, over the bare loop), in per cent.
Usage: ``python benchmarks/train_overhead.py [--epochs 2] [--repeats 3] [--threads 1] [--device cpu] [--tiny]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

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


def _folder(root: Path, per_class: int) -> Path:
    """10 classes of 40x40 JPEGs: a class colour plus noise (deterministic)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(10):
        for split, n in (("train", per_class), ("val", max(2, per_class // 5))):
            d = root / split / f"c{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                base = np.array([25 * c, 255 - 25 * c, (70 * c) % 256], dtype=np.int16)
                pixels = np.clip(base + rng.integers(-60, 60, (40, 40, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(d / f"{i}.jpg", quality=90)
    return root


class _Clock:
    """Wall and CPU seconds of the timed blocks."""

    def __init__(self, device: Any) -> None:
        self.device, self.wall, self.cpu = device, 0.0, 0.0

    def __enter__(self) -> "_Clock":
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: Any) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.wall += time.perf_counter() - self.t0
        self.cpu += time.process_time() - self.c0


def _timm_epoch(model: Any, batches: Any, optimizer: Any, scheduler: Any, loss_fn: Any, *, num_updates: int, device: Any,
                mixup: Any = None, ema: Any = None) -> int:
    """timm train.py's ``train_one_epoch`` (non-distributed, no prefetcher): the per-step work it does."""
    from contextlib import suppress

    import torch

    amp_autocast = suppress if device.type != "cuda" else (lambda: torch.autocast("cuda", dtype=torch.bfloat16))
    losses = []
    model.train()
    for x, target in batches:
        x, target = x.to(device), target.to(device)
        if mixup is not None:
            x, target = mixup(x, target)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with amp_autocast():
            loss = loss_fn(model(x), target)
        losses.append(loss.item())  # timm's loss meter, every step when not distributed
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.update(model, step=num_updates + 1)
        num_updates += 1
        scheduler.step_update(num_updates=num_updates)
    return num_updates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=64, help="training images per class of the generated folder")
    parser.add_argument("--tiny", action="store_true", help="a 16 px two-stage CNN instead of the 4.8M-MAC candidate")
    parser.add_argument("--only", choices=("batch", "timm"), default=None, help="run one setting")
    args = parser.parse_args()

    import numpy as np
    import torch
    import torch.nn.functional as F
    from timm.data import Mixup, create_dataset, create_loader
    from timm.loss import SoftTargetCrossEntropy
    from timm.utils import ModelEmaV3

    from archsearch import cost
    from archsearch.models import build_model
    from archsearch.space import spec_from_dict
    from archsearch.train import BatchTransform, get_dataset, get_recipe, resolve_device, train
    from archsearch.train.factories import _pillow_safe_posterize, create_optimizer, create_scheduler

    torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    spec = spec_from_dict(TINY_SPEC if args.tiny else QUICK_SPEC)
    torch.manual_seed(0)
    initial = build_model(spec, num_classes=10).state_dict()

    def fresh() -> torch.nn.Module:
        model = build_model(spec, num_classes=10)
        model.load_state_dict(initial)
        model.to(dev)
        if dev.type == "cuda":
            model.to(memory_format=torch.channels_last)
        return model

    def best(runs: dict[str, list[tuple[float, float]]], images: int, ref: str, extra_ref: str | None = None) -> dict[str, Any]:
        wall = {k: min(w for w, _ in v) for k, v in runs.items()}
        cpu = {k: min(c for _, c in v) for k, v in runs.items()}
        out: dict[str, Any] = {
            "images": images, "seconds": {k: round(v, 3) for k, v in wall.items()},
            "cpu_seconds": {k: round(v, 3) for k, v in cpu.items()},
            "images_per_s": {k: round(images / v, 1) for k, v in wall.items()},
            "overhead_vs_timm_pct": round(100 * (wall["trainer"] / wall[ref] - 1), 1),
            "cpu_overhead_vs_timm_pct": round(100 * (cpu["trainer"] / cpu[ref] - 1), 1),
            "all_runs": {k: [[round(w, 3), round(c, 3)] for w, c in v] for k, v in runs.items()},
        }
        if extra_ref:
            out["overhead_vs_bare_pct"] = round(100 * (wall["trainer"] / wall[extra_ref] - 1), 1)
            out["cpu_overhead_vs_bare_pct"] = round(100 * (cpu["trainer"] / cpu[extra_ref] - 1), 1)
        return out

    result: dict[str, Any] = {"model": spec.name, "macs": cost.macs(spec, with_head=True), "device": str(dev),
                              "threads": args.threads, "epochs": args.epochs, "repeats": args.repeats}

    # -- the batch pipeline: quick on digits
    if args.only in (None, "batch"):
        data = get_dataset("digits", seed=0)
        recipe = get_recipe("quick").replace(epochs=args.epochs)
        tf = BatchTransform(data.info, channels=3, resolution=spec.resolution, device=dev, channels_last=dev.type == "cuda")
        x_all, y_all = tf(data.train.images, train=False), data.train.labels.to(dev)
        n, bs = len(y_all), recipe.batch_size
        steps = n // bs

        def bare() -> tuple[float, float]:
            model = fresh().train()
            opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
            gen = torch.Generator().manual_seed(0)
            clock = _Clock(dev)
            for _ in range(args.epochs):
                perm = torch.randperm(n, generator=gen).to(dev)
                with clock:
                    for i in range(steps):
                        idx = perm[i * bs:(i + 1) * bs]
                        opt.zero_grad(set_to_none=True)
                        F.cross_entropy(model(x_all[idx]), y_all[idx]).backward()
                        opt.step()
            return clock.wall, clock.cpu

        def timm_loop() -> tuple[float, float]:
            model = fresh()
            opt = create_optimizer(model, recipe)
            sched = create_scheduler(opt, recipe, steps_per_epoch=steps)
            loss_fn = torch.nn.CrossEntropyLoss()
            clock, updates = _Clock(dev), 0
            for epoch in range(args.epochs):
                perm = torch.randperm(n, generator=torch.Generator().manual_seed(epoch))[:steps * bs]
                gen = torch.Generator(device=dev).manual_seed(epoch)
                with clock:
                    batches = ((tf(data.train.images[perm[i * bs:(i + 1) * bs]], train=True, generator=gen),
                                data.train.labels[perm[i * bs:(i + 1) * bs]]) for i in range(steps))
                    updates = _timm_epoch(model, batches, opt, sched, loss_fn, num_updates=updates, device=dev)
            return clock.wall, clock.cpu

        def trainer() -> tuple[float, float]:
            r = train(fresh(), data, recipe, device=str(dev), latency=False, eval_every=args.epochs)
            return r.train_time_s, r.train_cpu_s

        runs: dict[str, list[tuple[float, float]]] = {"bare": [], "timm_loop": [], "trainer": []}
        for _ in range(args.repeats):
            for name, fn in (("bare", bare), ("timm_loop", timm_loop), ("trainer", trainer)):
                runs[name].append(fn())
        result["batch"] = {"recipe": "quick", "dataset": "digits", "batch_size": bs,
                           **best(runs, steps * bs * args.epochs, "timm_loop", "bare")}

    # -- the timm pipeline: a DeiT-style recipe on an image folder
    if args.only in (None, "timm"):
        recipe = get_recipe("deit").for_epochs(args.epochs).replace(
            batch_size=64, lr=1e-3, lr_base_size=0, aug_repeats=0, ema_decay=0.999, drop_path_rate=0.0,
            interpolation="bilinear")
        with tempfile.TemporaryDirectory() as tmp:
            root = _folder(Path(tmp), args.images)
            data = get_dataset(f"imagefolder:{root}", resolution=spec.resolution, workers=0)
            steps = len(data.train) // recipe.batch_size
            mean, std = data.info.mean, data.info.std

            def timm_loop_folder() -> tuple[float, float]:
                model = fresh()
                dataset = create_dataset("", root=str(root), split="train")
                loader = create_loader(
                    dataset, input_size=(3, spec.resolution, spec.resolution), batch_size=recipe.batch_size, is_training=True,
                    re_prob=recipe.re_prob, re_mode=recipe.re_mode, color_jitter=recipe.color_jitter,
                    auto_augment=recipe.auto_augment, interpolation=recipe.interpolation, mean=mean, std=std, num_workers=0,
                    use_prefetcher=False, device=dev)
                _pillow_safe_posterize(dataset.transform)  # Pillow 13 refuses timm's 0-bit posterize (as the trainer)
                mixup = Mixup(mixup_alpha=recipe.mixup, cutmix_alpha=recipe.cutmix, switch_prob=recipe.mixup_switch_prob,
                              label_smoothing=recipe.label_smoothing, num_classes=10)
                ema = ModelEmaV3(model, decay=recipe.ema_decay)
                opt = create_optimizer(model, recipe)
                sched = create_scheduler(opt, recipe, steps_per_epoch=len(loader))
                clock, updates = _Clock(dev), 0
                np.random.seed(0)
                for _ in range(args.epochs):
                    with clock:
                        updates = _timm_epoch(model, loader, opt, sched, SoftTargetCrossEntropy(), num_updates=updates,
                                              device=dev, mixup=mixup, ema=ema)
                return clock.wall, clock.cpu

            def trainer_folder() -> tuple[float, float]:
                r = train(fresh(), data, recipe, device=str(dev), latency=False, eval_every=args.epochs, workers=0)
                return r.train_time_s, r.train_cpu_s

            runs = {"timm_loop": [], "trainer": []}
            order: list[tuple[str, Callable[[], tuple[float, float]]]] = [("timm_loop", timm_loop_folder),
                                                                          ("trainer", trainer_folder)]
            for _ in range(args.repeats):
                for name, fn in order:
                    runs[name].append(fn())
            result["timm"] = {"recipe": "deit-style (RandAugment, erasing, Mixup/CutMix, EMA)", "dataset": "generated folder",
                              "train_images": len(data.train), "batch_size": recipe.batch_size,
                              **best(runs, steps * recipe.batch_size * args.epochs, "timm_loop")}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
