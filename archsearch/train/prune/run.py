"""``archsearch prune``: the dense model, the pruning phase, fine-tuning and the run directory.

:func:`prune_model` makes the dense model (a timm ViT with local or published weights, or trained
here with the recipe when none are given), chooses the latency prediction (a calibration of this
device, ``latency_space``, or by default the GMACs proxy; the results say which), runs the pruning
phase (:func:`~archsearch.train.prune.phase.prune_vit`), fine-tunes the pruned model with the recipe
and writes the run directory. A key over every input names the three phases' checkpoints, so an
interrupted run resumes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from archsearch.cost.latency import predict_latency
from archsearch.cost.vit import vit_macs, vit_params
from archsearch.errors import SpecError, did_you_mean
from archsearch.space.budget import Budget
from archsearch.train.prune.config import STRUCTURES, PruneConfig
from archsearch.train.prune.from_timm import dense_from_timm, load_checkpoint_into
from archsearch.train.prune.gated import GatedViT, smallest_spec
from archsearch.train.prune.phase import prune_vit
from archsearch.train.prune.redistribution import redistribution_plot
from archsearch.train.prune.schedule import LatencyFn, _costs, _fits, _targets, gmacs_proxy

__all__ = ["prune_model"]


def _run_key(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def prune_model(
    *,
    model: str,
    dataset: str,
    budget: Budget,
    out: str | Path,
    model_kwargs: Mapping[str, Any] | None = None,
    checkpoint: str | Path | None = None,
    pretrained: bool = False,
    recipe: str = "quick",
    epochs: int | None = None,
    config: PruneConfig = PruneConfig(),
    seed: int = 0,
    device: str = "auto",
    data_dir: str | Path | None = None,
    max_batches: int | None = None,
    latency_space: str | None = None,
    progress: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Prunes a timm ViT to a budget on a dataset and writes the run directory (``archsearch prune``).

    The dense model is ``timm.create_model(name, pretrained=pretrained, **model_kwargs)`` with the
    weights of ``checkpoint``; without weights it is first trained with the recipe (said in ``log``
    and in the results). Then :func:`prune_vit`, then fine-tuning of the pruned model with the
    recipe. Written to ``out``: ``pruned.json`` (spec), ``pruned.pt`` (state dict), ``results.json``
    (accuracies, costs and latencies before/after, the per-block table, the pruning events),
    ``redistribution.png`` and ``.svg``; checkpoints of the three phases make an interrupted run resume.

    Args:
        model: ``timm:NAME`` (or ``NAME``) of a timm ``VisionTransformer``.
        dataset: Dataset name (see :func:`archsearch.train.list_datasets`).
        budget: Targets counting the whole model: macs, params and/or latency (ms, GMACs proxy).
        out: Run directory.
        model_kwargs: Keyword arguments of ``timm.create_model`` (``num_classes`` defaults to the dataset's).
        checkpoint: Local weights of the dense model.
        pretrained: Load timm's published weights from the Hugging Face hub (needs network access).
        recipe: Recipe of the dense training (when needed) and the fine-tuning.
        epochs: Overrides the recipe's epochs.
        config: The pruning phase.
        seed: Seeds the initial weights, data order and augmentation.
        device: ``auto``, ``cpu`` or ``cuda``.
        data_dir: Dataset download cache.
        max_batches: At most this many batches per training epoch (smoke runs).
        latency_space: A ViT space calibrated on this device (``archsearch calibrate --space NAME``)
            whose latency model predicts ``dLat`` and latency targets; default the GMACs proxy.
        progress: Progress bars on stderr.
        log: Receives one-line notes (dense training, proxies used).

    Returns:
        The results (also in ``results.json``).
    """
    import timm

    from archsearch.models.measure import count_macs, count_params
    from archsearch.train.datasets import DatasetError, get_dataset
    from archsearch.train.recipes import get_recipe
    from archsearch.train.runtime import measure_latency, resolve_device
    from archsearch.train.trainer import _evaluate, train

    name = model.removeprefix("timm:")
    kwargs = dict(model_kwargs or {})
    if checkpoint is not None and pretrained:
        raise SpecError("--checkpoint and --pretrained: give one source of weights, not both")
    rec = get_recipe(recipe)
    if epochs is not None:
        if not isinstance(epochs, int) or epochs < 1:
            raise SpecError(f"--epochs: expected an integer >= 1, got {epochs!r}")
        rec = rec.replace(epochs=epochs, warmup_epochs=rec.warmup_epochs * epochs / rec.epochs)
    targets = _targets(budget)
    dev = resolve_device(device)
    out = Path(out)
    lat_model = None
    if latency_space is not None:
        from archsearch.cost.latency import require_latency_model

        lat_model = require_latency_model(latency_space)
        if "vit_block" not in lat_model.coefs:
            raise SpecError(f"--latency-space {latency_space}: its calibration has no ViT blocks; calibrate a ViT space "
                            f"(nvit, revit*) with `archsearch calibrate --space NAME`")
    if name not in timm.list_models():
        raise SpecError(f"--model timm:{name}: not a timm model{did_you_mean(name, timm.list_models())} "
                        f"(see timm.list_models('vit_*'), timm.list_models('deit_*'))")
    data = get_dataset(dataset, seed=seed, root=data_dir)
    info = data.info
    kwargs.setdefault("num_classes", info.num_classes)
    torch.manual_seed(seed)
    try:
        tmodel = timm.create_model(name, pretrained=pretrained, **kwargs)
    except TypeError as exc:
        raise SpecError(f"--model-kwargs: not accepted by {name} ({exc})") from None
    except Exception as exc:  # hub and network errors of all kinds
        if not pretrained:
            raise
        raise SpecError(f"--pretrained: timm could not fetch the weights of {name} "
                        f"({str(exc).splitlines()[0][:200]}); pass a local --checkpoint") from None
    if checkpoint is not None:
        load_checkpoint_into(tmodel, checkpoint)
    dense = dense_from_timm(tmodel, name=name)
    spec0 = dense.spec
    if spec0.num_classes != info.num_classes:
        raise DatasetError(f"--model {name}: classifies {spec0.num_classes} classes, {info.name} has {info.num_classes}; "
                           f"give weights trained on {info.name} (or num_classes={info.num_classes} to train from scratch)")
    if spec0.resolution > info.max_resolution:
        raise DatasetError(f"--model {name}: input {spec0.resolution} px does not fit {info.name} "
                           f"(up to {info.max_resolution} px); set img_size in --model-kwargs")
    small = _costs(smallest_spec(GatedViT(dense, config.groups)), None)
    for k in ("macs", "params"):
        if k in targets and small[k] > targets[k]:
            raise SpecError(f"--budget: unreachable; the smallest model pruning can reach (one group per layer) has "
                            f"{k}={int(small[k])}, above the target {int(targets[k])}")
    key = _run_key({"model": name, "kwargs": kwargs, "checkpoint": str(checkpoint), "pretrained": pretrained,
                    "dataset": info.name, "budget": budget.to_dict(), "recipe": rec.to_dict(), "config": config.to_dict(),
                    "seed": seed, "max_batches": max_batches, "latency_space": latency_space})
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    dense_trained = checkpoint is None and not pretrained
    if dense_trained:
        log(f"no weights given: training the dense {name} with recipe {rec.name} ({rec.epochs} epochs) first")
        train(dense, data, rec, seed=seed, device=str(dev), checkpoint=out / "dense.pt", key=key + "-dense",
              progress=progress, latency=False, max_batches=max_batches)
    dense.to(dev).eval()
    bs = max(rec.batch_size, 256)
    from archsearch.train.datasets import BatchTransform

    transform = BatchTransform(info, channels=spec0.in_channels, resolution=spec0.resolution, device=dev)
    off = torch.autocast(dev.type, enabled=False)
    loss0, top1_0, top5_0 = _evaluate(dense, data, transform, off, rank=0, world=1, batch_size=bs)
    lat0 = measure_latency(dense, (spec0.in_channels, spec0.resolution, spec0.resolution), device=dev)
    macs0 = vit_macs(spec0, with_head=True)
    ms_per_mac = lat0 / macs0
    if lat_model is not None:
        latency_fn: LatencyFn = lambda s: predict_latency(s, lat_model)  # noqa: E731
        latency_desc = (f"calibrated: space {latency_space} on {lat_model.device} ({lat_model.device_name}); "
                        f"predicts {predict_latency(spec0, lat_model):.3f} ms for the dense model, measured {lat0:.3f} ms")
    else:
        latency_fn = gmacs_proxy(ms_per_mac)
        latency_desc = (f"gmacs-proxy (no --latency-space calibration; dLat = MACs x dense measured ms per MAC: "
                        f"{lat0:.3f} ms for {macs0 / 1e9:.4g} GMACs, {ms_per_mac * 1e9:.4g} ms/GMAC)")
    log(f"latency model: {latency_desc}")

    bar_ctx: Any = None
    callback: Callable[[int, int, dict[str, Any]], None] | None = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar_ctx = Progress(TextColumn("pruning"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                           TimeRemainingColumn(), transient=True)
        task = bar_ctx.add_task("pruning", total=config.every * config.steps, info="")

        def show(step: int, total: int, info_: dict[str, Any]) -> None:
            bar_ctx.update(task, completed=step, info=f"loss {info_['loss']:.3f} macs {info_['macs'] / 1e6:.3g}M")

        callback = show
    t_prune = time.perf_counter()
    if bar_ctx is not None:
        with bar_ctx:
            pruned, record = prune_vit(dense, data, budget, config=config, device=dev, seed=seed, latency=latency_fn,
                                       state_path=out / "prune_state.pt", key=key, progress=callback)
    else:
        pruned, record = prune_vit(dense, data, budget, config=config, device=dev, seed=seed, latency=latency_fn,
                                   state_path=out / "prune_state.pt", key=key)
    prune_time = time.perf_counter() - t_prune
    spec = dataclasses.replace(pruned.spec, name=f"{name}-pruned")
    pruned.spec = spec
    _, top1_p, top5_p = _evaluate(pruned, data, transform, off, rank=0, world=1, batch_size=bs)
    ft = train(pruned, data, rec, seed=seed, device=str(dev), checkpoint=out / "finetune.pt", key=key + "-finetune",
               progress=progress, latency=False, max_batches=max_batches)
    pruned.eval()
    lat1 = measure_latency(pruned, (spec.in_channels, spec.resolution, spec.resolution), device=dev)
    params1, macs1 = count_params(pruned), count_macs(pruned.to("cpu"), spec.resolution, in_channels=spec.in_channels)
    if params1 != vit_params(spec, with_head=True) or macs1 != vit_macs(spec, with_head=True):  # pragma: no cover
        raise SpecError("internal: the pruned module's costs differ from its spec's cost model")
    _write_atomic(out / "pruned.json", spec.to_json())
    torch.save(pruned.state_dict(), out / "pruned.pt")
    dense_prof, pruned_prof = record["dense_profile"], record["profile"]
    for suffix in ("png", "svg"):
        redistribution_plot(dense_prof, pruned_prof, out / f"redistribution.{suffix}",
                            title=f"{name} pruned to {budget.to_text()} ({config.criterion})")
    table = [{"block": i + 1, **{s: pruned_prof[s][i] for s in STRUCTURES},
              **{f"dense_{s}": dense_prof[s][i] for s in STRUCTURES}} for i in range(spec.depth)]
    results = {
        "key": key, "model": f"timm:{name}", "model_kwargs": kwargs, "checkpoint": None if checkpoint is None else str(checkpoint),
        "pretrained": pretrained, "dense_trained_here": dense_trained, "dataset": info.name, "recipe": rec.name,
        "recipe_params": rec.to_dict(), "seed": seed, "criterion": config.criterion, "config": config.to_dict(),
        "budget": budget.to_dict(), "device": str(dev),
        "latency_model": latency_desc,
        "ms_per_gmac": ms_per_mac * 1e9,
        "before": {"top1": top1_0, "top5": top5_0, "test_loss": loss0, "params": vit_params(spec0, with_head=True),
                   "macs": macs0, "latency_ms": lat0},
        "after_pruning": {"top1": top1_p, "top5": top5_p},
        "after": {"top1": ft.top1, "top5": ft.top5, "test_loss": ft.test_loss, "params": params1, "macs": macs1,
                  "latency_ms": lat1, "predicted_latency_ms": latency_fn(spec)},
        "targets_met": _fits({"macs": macs1, "params": params1, "latency": latency_fn(spec)}, targets),
        "blocks": table, "embed_dim": {"dense": spec0.embed_dim, "pruned": spec.embed_dim},
        "events": record["events"], "profile": pruned_prof, "dense_profile": dense_prof,
        "prune_time_s": prune_time, "finetune_time_s": ft.train_time_s, "wall_time_s": time.perf_counter() - t_start,
        "finetune_history": [h.to_dict() for h in ft.history], "spec": spec.to_dict(),
    }
    _write_atomic(out / "results.json", json.dumps(results, indent=2))
    return results
