"""NViT pruning on Fashion-MNIST: Hessian-aware saliency vs weight magnitude; prints one JSON object.

For each seed a small timm ViT (28 px, patch 7, EMB 64, 4 blocks of 4 heads of 16, MLP 128; about
2.3 M MACs) is trained with the ``quick`` recipe for ``--dense-epochs``, saved, then pruned to
``--fraction`` of its MACs (whole model) twice from the same weights: once with ``hessian`` and once
with ``magnitude`` saliency, under the same group sizes, normalisers, schedule, distillation and
fine-tuning (``--finetune-epochs`` of the same recipe). Reported per criterion: top-1 right after
pruning (before fine-tuning) and after fine-tuning, mean and standard deviation over the seeds, the
achieved MACs, and the mean redistribution profile (kept dims per block and structure).

The group sizes are scaled down with the model (EMB 8, heads 1, QK 4, V 4, MLP 16 instead of the
paper's 16/2/8/8/16, which leave EMB 64 only four groups) and ``eta = 0`` isolates the criterion
(the latency term is the same GMACs proxy for both). Not part of the test suite: the defaults take
well over 15 minutes on two busy CPU cores; ``--max-batches 300 --dense-epochs 1 --every 20
--steps 5`` is the reduced run reported in docs/benchmarks.md. Usage::

    PYTHONPATH=. python benchmarks/prune_fashion_mnist.py [--seeds 0 1 2] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

MODEL = "vit_tiny_patch16_224"
KWARGS = {"img_size": 28, "patch_size": 7, "embed_dim": 64, "depth": 4, "num_heads": 4, "mlp_ratio": 2.0, "in_chans": 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--fraction", type=float, default=0.5, help="target MACs as a fraction of the dense model's")
    ap.add_argument("--dense-epochs", type=int, default=3)
    ap.add_argument("--finetune-epochs", type=int, default=1)
    ap.add_argument("--every", type=int, default=40, help="batches between pruning events")
    ap.add_argument("--steps", type=int, default=8, help="pruning events")
    ap.add_argument("--prune-lr", type=float, default=5e-4)
    ap.add_argument("--max-batches", type=int, default=None, help="at most N training batches per epoch (busy machines)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="keep the run directories here (default: a temporary directory)")
    args = ap.parse_args()

    import timm
    import torch

    from archsearch.cost.vit import vit_macs
    from archsearch.space.budget import Budget
    from archsearch.train import get_dataset, get_recipe, train
    from archsearch.train.prune import PruneConfig, dense_from_timm, prune_model

    torch.set_num_threads(args.threads)
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="prune-fmnist-"))
    data = get_dataset("fashion-mnist")
    recipe = get_recipe("quick")
    dense_recipe = recipe.replace(epochs=args.dense_epochs, warmup_epochs=min(1.0, args.dense_epochs / 4))
    runs: dict[str, list[dict]] = {"hessian": [], "magnitude": []}
    dense_rows = []
    t0 = time.perf_counter()
    for seed in args.seeds:
        torch.manual_seed(seed)
        tmodel = timm.create_model(MODEL, num_classes=10, **KWARGS)
        dense = dense_from_timm(tmodel, name=MODEL)
        res = train(dense, data, dense_recipe, seed=seed, device=args.device, latency=False, max_batches=args.max_batches)
        tmodel.load_state_dict({k: v for k, v in dense.state_dict().items()}, strict=True)
        ckpt = root / f"dense-{seed}.pth"
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        torch.save(tmodel.state_dict(), ckpt)
        macs = vit_macs(dense.spec, with_head=True)
        dense_rows.append({"seed": seed, "top1": res.top1, "macs": macs})
        print(f"seed {seed}: dense top1 {res.top1:.4f} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        for criterion in runs:
            config = PruneConfig(criterion=criterion, groups=(8, 1, 4, 4, 16), every=args.every, steps=args.steps,
                                 eta=0.0, lr=args.prune_lr, batch_size=64)
            r = prune_model(model=f"timm:{MODEL}", model_kwargs=KWARGS, checkpoint=ckpt, dataset="fashion-mnist",
                            budget=Budget(macs=int(args.fraction * macs)), out=root / f"{criterion}-{seed}",
                            recipe="quick", epochs=args.finetune_epochs, config=config, seed=seed, device=args.device,
                            max_batches=args.max_batches)
            runs[criterion].append(r)
            print(f"seed {seed} {criterion}: pruned {r['after_pruning']['top1']:.4f} -> fine-tuned {r['after']['top1']:.4f}, "
                  f"macs {r['after']['macs']} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    def stats(values: list[float]) -> dict[str, float]:
        return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "min": min(values), "max": max(values)}

    out = {"model": MODEL, "model_kwargs": KWARGS, "dataset": "fashion-mnist", "seeds": args.seeds,
           "fraction": args.fraction, "dense_epochs": args.dense_epochs, "max_batches": args.max_batches, "finetune_epochs": args.finetune_epochs,
           "schedule": {"every": args.every, "steps": args.steps, "prune_lr": args.prune_lr, "groups": [8, 1, 4, 4, 16],
                        "normalisers": [12, 12, 2, 2, 1], "eta": 0.0},
           "dense": {"top1": stats([d["top1"] for d in dense_rows]), "macs": dense_rows[0]["macs"]},
           "threads": args.threads, "wall_time_s": round(time.perf_counter() - t0, 1)}
    for criterion, rs in runs.items():
        prof = {s: [statistics.fmean(r["profile"][s][i] for r in rs) for i in range(len(rs[0]["profile"][s]))]
                for s in rs[0]["profile"]}
        out[criterion] = {
            "top1_after_pruning": stats([r["after_pruning"]["top1"] for r in rs]),
            "top1_after_finetune": stats([r["after"]["top1"] for r in rs]),
            "macs": [r["after"]["macs"] for r in rs], "params": [r["after"]["params"] for r in rs],
            "mean_profile": prof, "profiles": [r["profile"] for r in rs],
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
