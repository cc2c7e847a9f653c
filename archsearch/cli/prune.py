"""``archsearch prune``: NViT global structural pruning of a trained timm ViT to a budget; its arguments
are all checked before torch is imported."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from archsearch.cli._output import EXIT_OK, err, print_json, print_table
from archsearch.errors import SpecError
from archsearch.space.budget import Budget, format_count

__all__ = ["cmd_prune", "register_prune"]


def register_prune(sub: Any) -> None:
    p = sub.add_parser("prune", help="NViT global structural pruning of a trained timm ViT to a budget")
    p.add_argument("--model", required=True, help="timm:NAME of a timm VisionTransformer with a class token (deit_*, vit_*)")
    p.add_argument("--model-kwargs", help='JSON object of timm.create_model arguments, e.g. \'{"img_size": 32}\'')
    p.add_argument("--checkpoint", help="local weights of the dense model (torch.load weights_only=True); "
                                        "without weights the dense model is trained with the recipe first")
    p.add_argument("--pretrained", action="store_true", help="timm's published weights from the hub (needs network)")
    p.add_argument("--dataset", default="digits", help="digits (default), fashion-mnist, cifar10, cifar100, imagefolder:PATH")
    p.add_argument("--budget", required=True, help="targets counting the whole model: macs=..., params=..., latency=...ms")
    p.add_argument("--recipe", default="quick", help="recipe of the dense training (when needed) and the fine-tuning")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--criterion", choices=("hessian", "magnitude"), default="hessian")
    p.add_argument("--groups", help="group sizes, e.g. emb=16,heads=2,qk=8,v=8,mlp=16 (the default)")
    p.add_argument("--every", type=int, default=100, help="batches between pruning events (default 100)")
    p.add_argument("--steps", type=int, default=10, help="pruning events (default 10)")
    p.add_argument("--eta", type=float, default=5e-4, help="latency weight of I - eta*dLat(ms) (default 5e-4; 0: off)")
    p.add_argument("--latency-space", help="a ViT space calibrated on this device (archsearch calibrate --space nvit) "
                                           "whose latency model gives dLat and latency targets (default: the GMACs proxy)")
    p.add_argument("--prune-lr", type=float, default=1e-4, help="AdamW learning rate while pruning (default 1e-4)")
    p.add_argument("--prune-batch-size", type=int, default=64, help="batch size while pruning (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--data-dir", help="dataset download cache")
    p.add_argument("--max-batches", type=int, default=None, help="at most N training batches per epoch (smoke runs)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of torch")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (results and errors still print)")
    p.set_defaults(func=cmd_prune)


_GROUP_NAMES = ("emb", "heads", "qk", "v", "mlp")


def _parse_groups(text: str) -> dict[str, int]:
    """``emb=16,heads=2,qk=8,v=8,mlp=16`` (any subset) -> the sizes given, checked without importing torch."""
    sizes: dict[str, int] = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        digits = value.strip()
        if key.strip() not in _GROUP_NAMES or not (digits.isascii() and digits.isdigit() and len(digits) <= 6) or int(digits) < 1:
            raise SpecError(f"--groups: expected KEY=N with KEY in {list(_GROUP_NAMES)} and N an integer in [1, 999999], "
                            f"got {part[:40]!r}")
        sizes[key.strip()] = int(value)
    return sizes


def cmd_prune(args: argparse.Namespace) -> int:
    if not args.model.startswith("timm:"):
        raise SpecError(f"--model: expected timm:NAME (a timm VisionTransformer), got {args.model[:60]!r}")
    from archsearch._jsonio import parse_json

    kwargs = parse_json(args.model_kwargs, source="--model-kwargs") if args.model_kwargs else {}
    if not isinstance(kwargs, dict):
        raise SpecError(f"--model-kwargs: expected a JSON object, got {args.model_kwargs[:60]!r}")
    groups = _parse_groups(args.groups or "")
    if args.threads is not None:  # torch only now: every argument above is checked in milliseconds
        import torch

        torch.set_num_threads(args.threads)
    from archsearch.train.prune import DEFAULT_GROUPS, PruneConfig, prune_model

    groups = tuple(groups.get(name, size) for name, size in zip(_GROUP_NAMES, DEFAULT_GROUPS))
    config = PruneConfig(criterion=args.criterion, groups=groups, every=args.every,
                         steps=args.steps, eta=args.eta, lr=args.prune_lr, batch_size=args.prune_batch_size)
    budget = Budget.parse(args.budget)
    quiet = args.format == "json"
    try:
        res = prune_model(model=args.model, dataset=args.dataset, budget=budget, out=args.out, model_kwargs=kwargs,
                          checkpoint=args.checkpoint, pretrained=args.pretrained, recipe=args.recipe, epochs=args.epochs,
                          config=config, seed=args.seed, device=args.device, data_dir=args.data_dir,
                          max_batches=args.max_batches, latency_space=args.latency_space,
                          progress=sys.stderr.isatty() and not quiet and not args.quiet,
                          log=(lambda m: None) if args.quiet else (lambda m: err(m)))
    except KeyboardInterrupt:
        err("interrupted: the finished phases are checkpointed in --out; re-run the same command to resume")
        return 130
    from archsearch.study import record_prune

    record_prune(args.out, res)
    if quiet:
        print_json(res)
        return EXIT_OK
    b, a = res["before"], res["after"]
    print_table(f"{res['model']} pruned ({res['criterion']}) to {budget.to_text()} on {res['dataset']}",
                ["", "top1 %", "params", "macs", "latency ms"],
                [("dense", f"{100 * b['top1']:.2f}", format_count(b["params"]), format_count(b["macs"]), f"{b['latency_ms']:.3f}"),
                 ("pruned, before fine-tuning", f"{100 * res['after_pruning']['top1']:.2f}", "", "", ""),
                 ("pruned", f"{100 * a['top1']:.2f}", format_count(a["params"]), format_count(a["macs"]), f"{a['latency_ms']:.3f}")],
                caption=f"EMB {res['embed_dim']['dense']} -> {res['embed_dim']['pruned']}; latency targets and dLat: GMACs proxy")
    print_table("per-block dims (dense -> pruned)", ["block", "heads", "qk/head", "v/head", "mlp"],
                [(r["block"], *(f"{r['dense_' + s]} -> {r[s]}" for s in ("heads", "qk", "v", "mlp"))) for r in res["blocks"]])
    err(f"wrote {Path(args.out) / 'pruned.json'}, pruned.pt, results.json, redistribution.png/.svg and the study trial")
    return EXIT_OK
