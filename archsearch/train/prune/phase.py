"""The pruning phase: training with distillation while groups go on a schedule.

Training continues with the loss ``CE(z, y) + T^2 KL(softmax(z_dense / T) || softmax(z / T))``
against the frozen dense model (at the start the KL term and its gradient are zero, so the first
saliencies are the task loss's). The saliencies of the batches between two pruning events are
averaged, then smoothed across events, ``s <- ema s + (1 - ema) s_new``. Every ``every`` batches an
event (:func:`~archsearch.train.prune.schedule.prune_schedule`) removes groups until the costs drop
to its goal, which falls linearly from the dense cost to the target over ``steps`` events:

    goal = max(target, now - (now - target) / left)

with ``left`` the events still to come, so the last event's goal is the target and the result
never exceeds it. Then the pruned dims are removed physically. The phase's state (model, optimiser,
gates, smoothed saliencies, events) is saved after every event, so an interrupted phase resumes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from archsearch.errors import SpecError
from archsearch.models.vit import ArchsearchViT
from archsearch.space.budget import Budget
from archsearch.train.prune.config import STRUCTURES, PruneConfig
from archsearch.train.prune.gated import GatedViT, smallest_spec
from archsearch.train.prune.redistribution import profile
from archsearch.train.prune.schedule import LatencyFn, _costs, _fits, _targets, prune_schedule

__all__ = ["prune_vit"]


def _kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    t = temperature
    return F.kl_div(F.log_softmax(student / t, -1), F.log_softmax(teacher / t, -1), log_target=True,
                    reduction="batchmean") * t * t


def prune_vit(
    dense: ArchsearchViT,
    data: Any,
    budget: Budget,
    *,
    config: PruneConfig = PruneConfig(),
    device: torch.device | str = "cpu",
    seed: int = 0,
    latency: LatencyFn | None = None,
    state_path: str | Path | None = None,
    key: str = "",
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> tuple[ArchsearchViT, dict[str, Any]]:
    """Prunes a trained dense ViT to a budget (the pruning phase; fine-tuning is the caller's).

    Args:
        dense: The trained dense model (class token). Not modified: a copy is pruned.
        data: The :class:`~archsearch.train.ImageData` to train on while pruning.
        budget: Targets (whole model): ``macs``, ``params`` and/or ``latency_ms`` (as ``latency`` predicts it).
        config: Criterion, groups, schedule.
        device: Where to train.
        seed: Seeds the batch order and augmentation.
        latency: Predicted latency of a spec in ms (:func:`gmacs_proxy` or a calibrated model), for
            ``dLat`` and latency targets.
        state_path: File written after every pruning event and resumed from when it holds ``key``.
        key: Identifies the run in ``state_path``.
        progress: Called as ``progress(batch, total_batches, info)`` after every batch.

    Returns:
        The physically pruned model (an :class:`ArchsearchViT` of its spec) and a record of the phase
        (``events``: costs and removed groups per event, ``profile``: kept dims per block).

    Raises:
        SpecError: The target is unreachable (the message gives the smallest reachable costs), or a
            latency target without a latency prediction.
    """
    import copy

    from archsearch.train.datasets import BatchTransform

    dev = torch.device(device)
    targets = _targets(budget)
    if "latency" in targets and latency is None:
        raise SpecError("--budget latency: needs a latency prediction (a calibration or the GMACs proxy); none was given")
    teacher = copy.deepcopy(dense).to(dev).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = copy.deepcopy(dense).to(dev)
    gated = GatedViT(student, config.groups)
    dense_costs = _costs(dense.spec, latency)
    small = _costs(smallest_spec(gated), latency)
    if not _fits(small, targets):
        bad = [k for k in targets if small[k] > targets[k]]
        raise SpecError("--budget: unreachable; the smallest model pruning can reach (one group per layer) has "
                        + ", ".join(f"{k}={small[k]:.6g}" for k in bad) + " against the target "
                        + ", ".join(f"{k}={targets[k]:.6g}" for k in bad))
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=0.0)
    transform = BatchTransform(data.info, channels=dense.spec.in_channels, resolution=dense.spec.resolution, device=dev)
    n_train = len(data.train)
    bs = min(config.batch_size, n_train)
    per_epoch = n_train // bs
    total = config.every * config.steps
    ema: dict[str, list[torch.Tensor]] | None = None
    events: list[dict[str, Any]] = []
    start = 0
    state_file = Path(state_path) if state_path is not None else None
    if state_file is not None and state_file.is_file():
        st = torch.load(state_file, map_location="cpu", weights_only=True)
        if st.get("key") == key:
            student.load_state_dict(st["model"])
            optimizer.load_state_dict(st["optimizer"])
            for s in STRUCTURES:
                for i, g in enumerate(st["gates"][s]):
                    gated.gates[s][i].copy_(g)
            ema = {s: [t.to(dev) for t in v] for s, v in st["ema"].items()} if st["ema"] is not None else None
            events = json.loads(st["events"])
            start = int(st["batch"])
    accum: dict[str, list[torch.Tensor]] | None = None
    n_accum = 0
    step = start
    t0 = time.perf_counter()
    student.train()
    while step < total:
        epoch, pos = divmod(step, per_epoch)
        perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
        gen = torch.Generator(device=dev).manual_seed(seed * 100_003 + epoch * 1_009 + 17)
        idx = perm[pos * bs:per_epoch * bs].tolist()
        for images, labels in data.train.batches(idx, bs):
            if step >= total:
                break
            x = transform(images, train=True, generator=gen)
            y = labels.to(dev)
            with torch.no_grad():
                t_logits = teacher(x)
            logits = gated(x)
            loss = F.cross_entropy(logits, y) + _kl(logits, t_logits, config.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            sal = gated.saliency(config.criterion, config.normalisers)
            accum = sal if accum is None else {s: [a + b for a, b in zip(accum[s], sal[s])] for s in STRUCTURES}
            n_accum += 1
            optimizer.step()
            step += 1
            if step % config.every == 0:
                batch_mean = {s: [a / n_accum for a in accum[s]] for s in STRUCTURES}  # type: ignore[index]
                ema = batch_mean if ema is None else {
                    s: [config.ema * e + (1 - config.ema) * b for e, b in zip(ema[s], batch_mean[s])] for s in STRUCTURES}
                accum, n_accum = None, 0
                left = config.steps - step // config.every + 1
                now = _costs(gated.pruned_spec(), latency)
                goal = {k: max(v, now[k] - (now[k] - v) / left) for k, v in targets.items()}
                removed = prune_schedule(gated, ema, goal, eta=config.eta, latency=latency)
                after = _costs(gated.pruned_spec(), latency)
                events.append({"batch": step, "removed": [list(r) for r in removed], "goal": goal, **after,
                               "loss": float(loss.item()), "time_s": time.perf_counter() - t0})
                if not _fits(after, goal):  # pragma: no cover - smallest_spec was checked above
                    raise SpecError("--budget: unreachable; every layer is down to its last group")
                if state_file is not None:
                    state_file.parent.mkdir(parents=True, exist_ok=True)
                    tmp = state_file.with_name(state_file.name + ".tmp")
                    torch.save({"key": key, "batch": step, "model": student.state_dict(),
                                "optimizer": optimizer.state_dict(),
                                "gates": {s: [g.cpu() for g in gated.gates[s]] for s in STRUCTURES},
                                "ema": {s: [t.cpu() for t in v] for s, v in ema.items()},
                                "events": json.dumps(events)}, tmp)
                    tmp.replace(state_file)
            if progress is not None:
                progress(step, total, {"loss": float(loss.item()), **_costs(gated.pruned_spec(), latency)})
    final = _costs(gated.pruned_spec(), latency)
    if not _fits(final, targets):  # pragma: no cover - the last event's goal is the target
        raise SpecError("--budget: the schedule ended above the target")
    student.eval()
    pruned = gated.physical().eval()
    spec = pruned.spec
    record = {
        "events": events, "dense_costs": dense_costs, "pruned_costs": final, "targets": targets,
        "profile": profile(spec), "dense_profile": profile(dense.spec), "kept": {
            "embed": gated.kept("embed").tolist(),
            **{s: [gated.kept(s, i).tolist() for i in range(spec.depth)] for s in ("heads", "qk", "v", "mlp")}},
    }
    return pruned, record
