"""The GPU path, proved on a device: training checks run by ``benchmarks/gpu_check.sh``; prints one JSON object.

On synthetic 10-class images (stored at 56 px, upscaled on the device to 224 px: learnable colours and
stripes with noise, so the loss must fall), with the trainer of :mod:`archsearch.train`:

1. ``resnet``: the published DeepMAD-R18 (DeepMAD's R18-budget CNN) for ``--steps`` steps at 224 px, the
   batch pipeline, AMP (bf16 where supported, else fp16), channels-last and ``torch.compile``: the loss
   falls and stays finite; images/s of the last epoch (compilation excluded), peak memory;
2. ``resnet_fp32``: the same model without AMP nor compile for a few epochs: images/s to set beside (1);
3. ``vit``: a DeiT-Tiny-sized ViT (192 wide, 12 blocks of 3 heads, patch 16, 224 px) with the ``deit``
   recipe (timm pipeline: RandAugment, random erasing, Mixup/CutMix, repeated augmentation, EMA, drop
   path) in loader workers, AMP, channels-last inputs and compile;
4. ``resume``: each model trained straight and trained with a mid-epoch checkpoint, interrupted and
   resumed (deterministic kernels, no compile): the final weights must be equal.

``--ddp-worker`` is the body of the 2-process DDP check (``torchrun --nproc_per_node=2``): the ranks train
the ResNet briefly and rank 0 prints whether their weights agree.

``--device cpu --quick`` runs every path at a toy size on a CPU (a check of this script, not a figure).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS for the resume check


def synthetic(n_train: int, n_test: int, side: int, classes: int = 10, seed: int = 0) -> Any:
    """In-memory RGB images: class colour, horizontal stripes of a class frequency, uniform noise."""
    import numpy as np
    import torch

    from archsearch.train.datasets import DatasetInfo, ImageData, TensorSplit

    rng = np.random.default_rng(seed)

    def make(n: int) -> tuple[Any, Any]:
        labels = rng.integers(0, classes, n)
        rows = np.arange(side)[None, :, None]
        stripes = 0.5 + 0.5 * np.sin(rows * (1 + labels[:, None, None]) * np.pi / side * 4)
        colour = np.stack([(labels * 37) % 256, (labels * 91) % 256, (labels * 151) % 256], 1)[:, :, None, None]
        img = colour * 0.5 + 100 * stripes[:, None] + rng.uniform(0, 80, (n, 3, side, side))
        return torch.as_tensor(np.clip(img, 0, 255).astype(np.uint8)), torch.as_tensor(labels)

    xtr, ytr = make(n_train)
    xte, yte = make(n_test)
    mean = tuple(float(v) for v in xtr.double().div(255).mean((0, 2, 3)))
    std = tuple(float(v) for v in xtr.double().div(255).std((0, 2, 3)))
    info = DatasetInfo("synthetic", classes, 3, side, 4 * side, max(1, side // 8), True, mean, std)
    return ImageData(info, TensorSplit(xtr, ytr), TensorSplit(xte, yte), workers=min(12, max(0, (os.cpu_count() or 2) - 2)))


def _models(quick: bool) -> dict[str, Any]:
    from archsearch.space import DEEPMAD_R18
    from archsearch.space.vit import ViTBlockSpec, ViTSpec

    if quick:
        from archsearch.space import CNNSpec, StageSpec, StemSpec

        cnn = CNNSpec(stem=StemSpec(out_channels=8, kernel=3, stride=2),
                      stages=(StageSpec("k1kxk1", 8, 16, bottleneck=8, kernel=3, stride=2, depth=1),),
                      resolution=32, num_classes=10, name="toy-cnn")
        vit = ViTSpec(48, tuple(ViTBlockSpec(3, 16, 16, 96) for _ in range(2)), patch_size=8, resolution=32,
                      num_classes=10, name="toy-vit")
    else:
        cnn = DEEPMAD_R18  # built with 10 classes
        vit = ViTSpec(192, tuple(ViTBlockSpec(3, 64, 64, 768) for _ in range(12)), patch_size=16, resolution=224,
                      num_classes=10, name="deit-tiny-size")
    return {"resnet": cnn, "vit": vit}


def _build(spec: Any, recipe: Any) -> Any:
    import torch

    from archsearch.models import build_model
    from archsearch.train.factories import model_kwargs

    torch.manual_seed(0)
    return build_model(spec, num_classes=10, **model_kwargs(recipe, spec.family))


def _summary(result: Any, t0: float) -> dict[str, Any]:
    import math

    losses = [h.train_loss for h in result.history]
    return {
        "train_loss_by_epoch": [round(v, 4) for v in losses], "loss_fell": losses[-1] < losses[0],
        "finite": all(math.isfinite(v) for v in losses), "top1": round(result.top1, 4),
        "ema_top1": None if result.ema_top1 is None else round(result.ema_top1, 4),
        "images_per_s_last_epoch": round(result.history[-1].images_per_s, 1),
        "images_per_s_first_epoch": round(result.history[0].images_per_s, 1), "steps": result.steps,
        "amp": result.amp, "peak_memory_gib": round(result.peak_memory_bytes / 2**30, 3),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


class _Stop(Exception):
    pass


def _resume_equal(spec: Any, data: Any, recipe: Any, device: str, tmp: Path, amp: str) -> dict[str, Any]:
    """Straight vs interrupted in epoch 2 after a step checkpoint and resumed: equal final weights?"""
    import torch

    from archsearch.train import train

    kw = dict(device=device, amp=amp, seed=1, max_batches=6, latency=False, eval_every=recipe.epochs)
    straight = _build(spec, recipe)
    train(straight, data, recipe, **kw)

    def stop(p: Any) -> None:
        if p.kind == "batch" and p.epoch == 2 and p.batch == 5:
            raise _Stop

    ckpt = tmp / f"{spec.name}.pt"
    try:
        train(_build(spec, recipe), data, recipe, checkpoint=ckpt, key="r", checkpoint_every=2, on_progress=stop, **kw)
    except _Stop:
        pass
    resumed = _build(spec, recipe)
    out = train(resumed, data, recipe, checkpoint=ckpt, key="r", **kw)
    a, b = straight.state_dict(), resumed.state_dict()
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    return {"equal": all(torch.equal(a[k], b[k]) for k in a), "max_abs_diff": diff, "resumed_from_epoch": out.resumed_from}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=192, help="training steps of each model (a multiple of 32 at batch 128)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--quick", action="store_true", help="toy sizes (a CPU check of this script)")
    parser.add_argument("--ddp-worker", action="store_true")
    parser.add_argument("--only", nargs="*", default=None, help="run these checks only (resnet resnet_fp32 vit resume)")
    args = parser.parse_args()

    import tempfile

    import torch

    from archsearch.train import get_recipe, train

    cuda = args.device.startswith("cuda")
    side = 8 if args.quick else 56
    steps_per_epoch = 4 if args.quick else 32
    batch = 8 if args.quick else args.batch
    epochs = max(2, args.steps // steps_per_epoch)
    data = synthetic(steps_per_epoch * batch, 2 * batch if args.quick else 1024, side)
    specs = _models(args.quick)
    compile_ = cuda and not args.no_compile
    amp = "auto" if cuda else "off"
    quick = get_recipe("quick").replace(epochs=epochs, batch_size=batch, lr=2e-3, warmup_epochs=1)

    if args.ddp_worker:
        from archsearch.train import init_distributed, resolve_device

        dev = resolve_device(args.device)
        rank, world = init_distributed(dev)
        model = _build(specs["resnet"], quick)
        result = train(model, data, quick.replace(epochs=2), device=args.device, amp=amp, latency=False, max_batches=8)
        import torch.distributed as dist

        flat = torch.cat([p.detach().float().flatten() for p in model.parameters()])
        gathered = [torch.zeros_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        if rank == 0:
            print(json.dumps({"ddp": {"world_size": world, "weights_agree": all(torch.equal(g, gathered[0]) for g in gathered),
                                      "images_per_s": round(result.images_per_s, 1), "top1": round(result.top1, 4)}}))
        dist.destroy_process_group()
        return 0

    out: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": args.device,
                           "device_name": torch.cuda.get_device_name(0) if cuda else "cpu",
                           "gpus": torch.cuda.device_count() if cuda else 0, "batch_size": batch,
                           "resolution": specs["resnet"].resolution, "compile": compile_}
    only = set(args.only or ("resnet", "resnet_fp32", "vit", "resume"))
    if "resnet" in only:
        t0 = time.perf_counter()
        result = train(_build(specs["resnet"], quick), data, quick, device=args.device, amp=amp, compile=compile_,
                       latency=True, eval_every=epochs)
        out["resnet"] = {"model": specs["resnet"].name, **_summary(result, t0), "latency_ms": result.latency_ms}
    if "resnet_fp32" in only:
        t0 = time.perf_counter()
        result = train(_build(specs["resnet"], quick), data, quick.replace(epochs=3), device=args.device, amp="off",
                       latency=False, eval_every=3)
        out["resnet_fp32"] = {"model": specs["resnet"].name, **_summary(result, t0)}
        if "resnet" in out:
            fast, slow = out["resnet"]["images_per_s_last_epoch"], out["resnet_fp32"]["images_per_s_last_epoch"]
            out["amp_speedup"] = round(fast / max(1e-9, slow), 2)
    if "vit" in only:
        deit = get_recipe("deit").for_epochs(epochs).replace(batch_size=batch)
        t0 = time.perf_counter()
        result = train(_build(specs["vit"], deit), data, deit, device=args.device, amp=amp, compile=compile_,
                       latency=True, eval_every=epochs)
        out["vit"] = {"model": specs["vit"].name, "recipe": "deit", **_summary(result, t0), "latency_ms": result.latency_ms,
                      "loader_workers": data.workers}
    if "resume" in only:
        if cuda:
            torch.backends.cudnn.benchmark = False
            torch.use_deterministic_algorithms(True, warn_only=True)  # warns where a kernel has no deterministic form
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            out["resume"] = {
                "resnet": _resume_equal(specs["resnet"], data, quick.replace(epochs=2, ema_decay=0.99, mixup=0.2), args.device,
                                        Path(tmp), amp),
                "vit": _resume_equal(specs["vit"], data, get_recipe("deit").for_epochs(2).replace(batch_size=batch),
                                     args.device, Path(tmp), amp),
                "wall_s": 0.0,
            }
            out["resume"]["wall_s"] = round(time.perf_counter() - t0, 1)
    ok = all(out[k]["loss_fell"] and out[k]["finite"] for k in ("resnet", "resnet_fp32", "vit") if k in out)
    ok = ok and all(v["equal"] for k, v in out.get("resume", {}).items() if isinstance(v, dict))
    out["ok"] = ok
    print(json.dumps(out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
