"""Global structural pruning of a trained ViT with Hessian-aware saliency (NViT).

Yang et al., "Global Vision Transformer Pruning with Hessian-Aware Saliency", CVPR 2023 (the facts used
here are those of ``shared/PAPERS.md``; nothing is taken from the reference code):

* **Structures and groups.** EMB (the embedding width, shared by every block) and, per block, the
  heads, the query/key indices per head (head-aligned: index j of every kept head), the value indices
  per head and the MLP units, cut into contiguous groups (default sizes EMB 16, heads 2, QK 8, V 8,
  MLP 16; the last group of a layer may be smaller). Each group S has a gate ``g_S = 1`` that
  multiplies *every* parameter indexed by it (the parameters its removal deletes).
* **Saliency.** ``hessian``: ``I_S = (sum_{s in S} w_s dL/dw_s / c)^2`` — the paper's Hessian-norm
  estimate, which reduces to the squared derivative of the loss with respect to the gate,
  ``(dL/dg_S)^2`` at ``g = 1`` — with the per-structure normaliser ``c`` (EMB 12, heads 12, QK 2, V 2,
  MLP 1). ``magnitude``: ``I_S = (||w_S||_2 / c)^2`` on the weights still in use (the baseline). Both
  are averaged over the batches between two pruning events and smoothed with an EMA (0.9) across
  events; one ranking covers all structures of all blocks.
* **Latency-aware.** ``I^L_S = I_S - eta * dLat(S)`` with ``dLat`` in milliseconds: the drop of the
  predicted latency when the group goes. The prediction is a calibrated ViT latency model
  (``archsearch calibrate --space nvit`` on this device, chosen with ``latency_space``; its per-block
  formula takes any dims and token count), or by default the GMACs proxy: MACs times the dense
  model's measured milliseconds per MAC on this device (eta keeps its unit either way); the results
  say which (``latency_model``).
* **Schedule.** Training continues (loss: cross-entropy on the labels plus the KL divergence to the
  frozen dense model; at the start the KL term and its gradient are zero, so the first saliencies
  are the task loss's); every ``every`` batches, after the saliencies of those batches are folded in,
  the lowest-ranked groups are removed (never a layer's last group) until the cost drops to the
  event's goal, which falls linearly from the dense cost to the target over ``steps`` events. The
  last event stops at the first removal that meets the target, so the result never exceeds it; the
  cost model (:mod:`archsearch.cost.vit`) decides. Then the pruned dims are removed physically (the
  module becomes the :class:`~archsearch.models.vit.ArchsearchViT` of its spec, each block keeping the
  dense block's attention scale in ``ViTBlockSpec.scale``) and the model is fine-tuned with a recipe.

The gated forward computes every LayerNorm's statistics over the kept EMB channels only, so a gated
model with some gates at zero computes what the physically pruned model computes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.models.vit import ArchsearchViT, load_timm_weights
from archsearch.cost.latency import predict_latency
from archsearch.cost.vit import vit_macs, vit_params
from archsearch.errors import SpecError, did_you_mean
from archsearch.space.budget import Budget
from archsearch.space.vit import ViTBlockSpec, ViTSpec

__all__ = [
    "STRUCTURES", "GatedViT", "PruneConfig", "dense_from_timm", "load_checkpoint_into", "prune_schedule",
    "profile", "prune_model", "prune_vit", "redistribution_plot", "smallest_spec", "spec_from_timm",
]

STRUCTURES = ("embed", "heads", "qk", "v", "mlp")
#: NViT's unit group sizes (PAPERS.md) and saliency normalisers, in :data:`STRUCTURES` order.
DEFAULT_GROUPS = (16, 2, 8, 8, 16)
DEFAULT_NORMALISERS = (12.0, 12.0, 2.0, 2.0, 1.0)
Criterion = Literal["hessian", "magnitude"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class PruneConfig:
    """How the pruning phase runs.

    Attributes:
        criterion: ``hessian`` (NViT) or ``magnitude`` (group L2 norm, the baseline).
        groups: Group sizes of EMB, heads, QK, V, MLP.
        normalisers: Divisors of the group terms before squaring, same order.
        every: Batches between two pruning events (saliencies are averaged over them).
        steps: Pruning events; the cost goal falls linearly from the dense cost to the target.
        ema: Smoothing of the saliencies across events (``s <- ema s + (1 - ema) s_new``).
        eta: Latency weight of ``I - eta * dLat`` (dLat in ms; 0 disables).
        lr: AdamW learning rate while pruning (the paper's 1e-4).
        batch_size: Images per batch while pruning.
        temperature: Softmax temperature of the KL distillation.
    """

    criterion: Criterion = "hessian"
    groups: tuple[int, int, int, int, int] = DEFAULT_GROUPS
    normalisers: tuple[float, float, float, float, float] = DEFAULT_NORMALISERS
    every: int = 100
    steps: int = 10
    ema: float = 0.9
    eta: float = 5e-4
    lr: float = 1e-4
    batch_size: int = 64
    temperature: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "normalisers", tuple(float(c) for c in self.normalisers))
        checks = [
            ("criterion", self.criterion in ("hessian", "magnitude"), "'hessian' or 'magnitude'"),
            ("groups", len(self.groups) == 5 and all(isinstance(g, int) and not isinstance(g, bool) and 1 <= g <= 4096
                                                       for g in self.groups), "5 integers in [1, 4096] (emb, heads, qk, v, mlp)"),
            ("normalisers", len(self.normalisers) == 5 and all(0 < c < 1e6 for c in self.normalisers),
             "5 positive numbers (emb, heads, qk, v, mlp)"),
            ("every", isinstance(self.every, int) and 1 <= self.every <= 1_000_000, "an integer in [1, 1000000]"),
            ("steps", isinstance(self.steps, int) and 1 <= self.steps <= 10_000, "an integer in [1, 10000]"),
            ("ema", 0 <= self.ema < 1, "a number in [0, 1)"),
            ("eta", 0 <= self.eta < 1e6 and math.isfinite(self.eta), "a number >= 0"),
            ("lr", 0 < self.lr <= 10, "a number in (0, 10]"),
            ("batch_size", isinstance(self.batch_size, int) and 1 <= self.batch_size <= 65536, "an integer in [1, 65536]"),
            ("temperature", 0 < self.temperature <= 100, "a number in (0, 100]"),
        ]
        for name, ok, accepted in checks:
            if not ok:
                raise SpecError(f"prune.{name}: expected {accepted}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------------
# the gated model


def _owner(size: int, group: int) -> torch.Tensor:
    """Group index of every index of a layer of ``size``: contiguous groups, the last one possibly smaller."""
    return torch.arange(size) // group


class GatedViT(nn.Module):
    """A dense :class:`ArchsearchViT` with a gate per group; gates at 0 remove their groups.

    The gates multiply the parameters (``w_eff = w * product of the gates indexing w``), so the
    derivative of the loss with respect to a gate at 1 is ``sum_{s in S} w_s dL/dw_s``. Gates are
    float tensors in :attr:`gates` (``gates["embed"][0]`` one per EMB group; ``gates[s][i]`` one per
    group of block i for the other structures); make one ``requires_grad`` to differentiate by it.

    Args:
        model: The dense model (its parameters are trained in place).
        groups: Group sizes of EMB, heads, QK, V, MLP.
    """

    def __init__(self, model: ArchsearchViT, groups: Sequence[int] = DEFAULT_GROUPS) -> None:
        super().__init__()
        if not isinstance(model, ArchsearchViT):
            raise SpecError(f"model: expected an ArchsearchViT, got {type(model).__name__}")
        if not isinstance(model.norm, nn.LayerNorm) or model.global_pool != "token":
            raise SpecError("model: pruning needs the class-token layout (final LayerNorm, token pooling)")
        self.model = model
        self.spec = model.spec
        self.group_sizes = dict(zip(STRUCTURES, groups))
        self.scales = [blk.attn.scale for blk in model.blocks]
        sizes: dict[str, list[int]] = {
            "embed": [self.spec.embed_dim],
            "heads": [b.heads for b in self.spec.blocks],
            "qk": [b.qk_dim for b in self.spec.blocks],
            "v": [b.v_dim for b in self.spec.blocks],
            "mlp": [b.mlp_dim for b in self.spec.blocks],
        }
        self.owners = {s: [_owner(n, self.group_sizes[s]) for n in sizes[s]] for s in STRUCTURES}
        first = next(model.parameters())
        dev = first.device
        self.gates: dict[str, list[torch.Tensor]] = {
            s: [torch.ones(int(o[-1]) + 1, device=dev, dtype=first.dtype) for o in self.owners[s]] for s in STRUCTURES
        }
        self.owners = {s: [o.to(dev) for o in self.owners[s]] for s in STRUCTURES}

    def mask(self, structure: str, layer: int = 0) -> torch.Tensor:
        """Per-index mask (the gate of each index's group)."""
        return self.gates[structure][layer][self.owners[structure][layer]]

    def kept(self, structure: str, layer: int = 0) -> torch.Tensor:
        """Indices whose group's gate is not zero."""
        return torch.nonzero(self.mask(structure, layer).detach() != 0).flatten().cpu()

    def effective(self) -> dict[str, torch.Tensor]:
        """Every parameter times the gates indexing it (names of the model's state dict)."""
        m, e = self.model, self.mask("embed")
        p = dict(m.named_parameters())
        out = {
            "patch_embed.proj.weight": p["patch_embed.proj.weight"] * e[:, None, None, None],
            "patch_embed.proj.bias": p["patch_embed.proj.bias"] * e,
            "cls_token": p["cls_token"] * e, "pos_embed": p["pos_embed"] * e,
            "norm.weight": p["norm.weight"] * e, "norm.bias": p["norm.bias"] * e,
            "head.weight": p["head.weight"] * e[None, :], "head.bias": p["head.bias"],
        }
        for i, blk in enumerate(self.spec.blocks):
            pre = f"blocks.{i}."
            hg, qg, vg, mg = self.mask("heads", i), self.mask("qk", i), self.mask("v", i), self.mask("mlp", i)
            qk_rows = (hg[:, None] * qg[None, :]).reshape(-1)
            v_rows = (hg[:, None] * vg[None, :]).reshape(-1)
            rows = torch.cat([qk_rows, qk_rows, v_rows])
            for n in ("norm1", "norm2"):
                out[pre + n + ".weight"] = p[pre + n + ".weight"] * e
                out[pre + n + ".bias"] = p[pre + n + ".bias"] * e
            out[pre + "attn.qkv.weight"] = p[pre + "attn.qkv.weight"] * rows[:, None] * e[None, :]
            out[pre + "attn.qkv.bias"] = p[pre + "attn.qkv.bias"] * rows
            out[pre + "attn.proj.weight"] = p[pre + "attn.proj.weight"] * e[:, None] * v_rows[None, :]
            out[pre + "attn.proj.bias"] = p[pre + "attn.proj.bias"] * e
            out[pre + "mlp.fc1.weight"] = p[pre + "mlp.fc1.weight"] * mg[:, None] * e[None, :]
            out[pre + "mlp.fc1.bias"] = p[pre + "mlp.fc1.bias"] * mg
            out[pre + "mlp.fc2.weight"] = p[pre + "mlp.fc2.weight"] * e[:, None] * mg[None, :]
            out[pre + "mlp.fc2.bias"] = p[pre + "mlp.fc2.bias"] * e
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, spec = self.model, self.spec
        w = self.effective()
        keep = (self.mask("embed").detach() != 0).to(x.dtype)  # statistics over kept channels: not a gate path
        n_keep = keep.sum()

        def norm(t: torch.Tensor, name: str) -> torch.Tensor:
            mean = (t * keep).sum(-1, keepdim=True) / n_keep
            c = (t - mean) * keep
            var = (c * c).sum(-1, keepdim=True) / n_keep
            return c * torch.rsqrt(var + m.norm.eps) * w[name + ".weight"] + w[name + ".bias"]

        x = F.conv2d(x, w["patch_embed.proj.weight"], w["patch_embed.proj.bias"], stride=spec.patch_size)
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([w["cls_token"].expand(x.shape[0], -1, -1), x], dim=1) + w["pos_embed"]
        x = m.pos_drop(x)
        B, N, _ = x.shape
        for i, (blk, b) in enumerate(zip(m.blocks, spec.blocks)):
            pre = f"blocks.{i}."
            h = F.linear(norm(x, pre + "norm1"), w[pre + "attn.qkv.weight"], w[pre + "attn.qkv.bias"])
            q, k, v = h.split([b.heads * b.qk_dim, b.heads * b.qk_dim, b.heads * b.v_dim], dim=-1)
            q = q.reshape(B, N, b.heads, b.qk_dim).transpose(1, 2)
            k = k.reshape(B, N, b.heads, b.qk_dim).transpose(1, 2)
            v = v.reshape(B, N, b.heads, b.v_dim).transpose(1, 2)
            attn = blk.attn.attn_drop(((q * self.scales[i]) @ k.transpose(-2, -1)).softmax(dim=-1))
            a = (attn @ v).transpose(1, 2).reshape(B, N, b.heads * b.v_dim)
            a = blk.attn.proj_drop(F.linear(a, w[pre + "attn.proj.weight"], w[pre + "attn.proj.bias"]))
            x = x + blk.drop_path1(a)
            h = blk.mlp.drop1(blk.mlp.act(F.linear(norm(x, pre + "norm2"), w[pre + "mlp.fc1.weight"], w[pre + "mlp.fc1.bias"])))
            h = blk.mlp.drop2(F.linear(h, w[pre + "mlp.fc2.weight"], w[pre + "mlp.fc2.bias"]))
            x = x + blk.drop_path2(h)
        x = norm(x, "norm")[:, 0]
        return F.linear(m.head_drop(x), w["head.weight"], w["head.bias"])

    # -- scores ------------------------------------------------------------------------------------

    def group_sums(self, terms: Mapping[str, torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        """Sums per group of per-parameter terms (same names and shapes as :meth:`effective`)."""
        t = terms
        emb = (t["patch_embed.proj.weight"].sum((1, 2, 3)) + t["patch_embed.proj.bias"] + t["cls_token"].sum((0, 1))
               + t["pos_embed"].sum((0, 1)) + t["norm.weight"] + t["norm.bias"] + t["head.weight"].sum(0))
        out: dict[str, list[torch.Tensor]] = {s: [] for s in STRUCTURES}
        for i, b in enumerate(self.spec.blocks):
            pre = f"blocks.{i}."
            qkv = t[pre + "attn.qkv.weight"]
            emb = emb + qkv.sum(0) + t[pre + "attn.proj.weight"].sum(1) + t[pre + "attn.proj.bias"]
            emb = emb + t[pre + "mlp.fc1.weight"].sum(0) + t[pre + "mlp.fc2.weight"].sum(1) + t[pre + "mlp.fc2.bias"]
            for n in ("norm1", "norm2"):
                emb = emb + t[pre + n + ".weight"] + t[pre + n + ".bias"]
            rows = qkv.sum(1) + t[pre + "attn.qkv.bias"]
            nq = b.heads * b.qk_dim
            q = rows[:nq].reshape(b.heads, b.qk_dim) + rows[nq:2 * nq].reshape(b.heads, b.qk_dim)
            v = rows[2 * nq:].reshape(b.heads, b.v_dim) + t[pre + "attn.proj.weight"].sum(0).reshape(b.heads, b.v_dim)
            mlp = t[pre + "mlp.fc1.weight"].sum(1) + t[pre + "mlp.fc1.bias"] + t[pre + "mlp.fc2.weight"].sum(0)
            per_index = {"heads": q.sum(1) + v.sum(1), "qk": q.sum(0), "v": v.sum(0), "mlp": mlp}
            for s, vals in per_index.items():
                out[s].append(self._by_group(s, i, vals))
        out["embed"] = [self._by_group("embed", 0, emb)]
        return out

    def _by_group(self, structure: str, layer: int, values: torch.Tensor) -> torch.Tensor:
        gates = self.gates[structure][layer]
        return torch.zeros(len(gates), dtype=values.dtype, device=values.device).index_add_(
            0, self.owners[structure][layer], values)

    def saliency(self, criterion: Criterion, normalisers: Sequence[float] = DEFAULT_NORMALISERS) -> dict[str, list[torch.Tensor]]:
        """One batch's saliency of every group: ``hessian`` needs the parameters' ``.grad`` of the
        batch's loss (from a backward through this module); ``magnitude`` reads the weights only."""
        params = dict(self.model.named_parameters())
        if criterion == "hessian":
            terms = {}
            for name, eff in self.effective().items():
                g = params[name].grad
                terms[name] = (params[name] * g).detach() if g is not None else torch.zeros_like(eff)
            sums = self.group_sums(terms)
        elif criterion == "magnitude":
            with torch.no_grad():
                sums = {s: [v.sqrt() for v in vals] for s, vals in
                        self.group_sums({k: v.detach() ** 2 for k, v in self.effective().items()}).items()}
        else:
            raise SpecError(f"criterion: expected 'hessian' or 'magnitude', got {criterion!r}")
        norm = dict(zip(STRUCTURES, normalisers))
        return {s: [(v / norm[s]) ** 2 for v in vals] for s, vals in sums.items()}

    # -- specs -------------------------------------------------------------------------------------

    def counts(self) -> dict[str, list[int]]:
        return {s: [len(self.kept(s, i)) for i in range(len(self.gates[s]))] for s in STRUCTURES}

    def pruned_spec(self, counts: Mapping[str, Sequence[int]] | None = None) -> ViTSpec:
        """The spec of the kept dims (``counts``: per structure and layer, default the gates'), every
        block keeping the dense block's attention scale."""
        c = counts or self.counts()
        blocks = tuple(ViTBlockSpec(c["heads"][i], c["qk"][i], c["v"][i], c["mlp"][i], scale=float(self.scales[i]))
                       for i in range(self.spec.depth))
        return dataclasses.replace(self.spec, embed_dim=c["embed"][0], blocks=blocks)

    def physical(self) -> ArchsearchViT:
        """The pruned module: an :class:`ArchsearchViT` of :meth:`pruned_spec` holding the kept weights."""
        spec = self.pruned_spec()
        dev = next(self.model.parameters()).device
        with torch.device(dev):
            model = ArchsearchViT(spec)
        keep = {"embed": self.kept("embed").tolist()}
        for s in ("heads", "qk", "v", "mlp"):
            keep[s] = [self.kept(s, i).tolist() for i in range(self.spec.depth)]
        return load_timm_weights(model, self.model, keep=keep)


def smallest_spec(gated: GatedViT) -> ViTSpec:
    """The smallest spec pruning can reach: every layer keeps only its smallest group."""
    counts = {s: [int(torch.bincount(o).min()) for o in gated.owners[s]] for s in STRUCTURES}
    return gated.pruned_spec(counts)


# ---------------------------------------------------------------------------------------------------
# timm models


def spec_from_timm(model: nn.Module, *, name: str = "") -> ViTSpec:
    """The dense :class:`ViTSpec` of a timm ``VisionTransformer`` with a class token and standard blocks.

    Raises:
        SpecError: Another class or layout (registers, layer scale, pre-norm, another pooling ...).
    """
    from timm.models.vision_transformer import VisionTransformer

    if not isinstance(model, VisionTransformer):
        raise SpecError(f"--model: expected a timm VisionTransformer (deit_*, vit_*), got {type(model).__name__}")
    pe = model.patch_embed
    problems = []
    if model.cls_token is None or model.global_pool != "token":
        problems.append("a class token with token pooling")
    if getattr(model, "num_reg_tokens", 0) or getattr(model, "no_embed_class", False):
        problems.append("no register tokens and the class token in the position embedding")
    if not isinstance(model.norm_pre, nn.Identity) or not isinstance(model.fc_norm, nn.Identity) or model.attn_pool is not None:
        problems.append("no pre-norm, no fc_norm, no attention pooling")
    if not isinstance(pe.norm, nn.Identity) or getattr(model, "dynamic_img_size", False) or pe.img_size[0] != pe.img_size[1] \
            or pe.patch_size[0] != pe.patch_size[1]:
        problems.append("a plain square patch embedding at a fixed square size")
    for blk in model.blocks:
        attn = getattr(blk, "attn", None)
        if not all(hasattr(blk, n) for n in ("norm1", "norm2", "mlp", "ls1")) or not hasattr(attn, "qkv") \
                or not isinstance(blk.ls1, nn.Identity) or not isinstance(getattr(attn, "q_norm", nn.Identity()), nn.Identity):
            problems.append("standard blocks (no layer scale, no QK norm)")
            break
    if problems:
        raise SpecError(f"--model {name or type(model).__name__}: not supported; pruning needs {'; '.join(problems)}")
    d = model.embed_dim
    blocks = []
    for blk in model.blocks:
        h = blk.attn.num_heads
        hd = blk.attn.qkv.out_features // (3 * h)
        blocks.append(ViTBlockSpec(h, hd, hd, blk.mlp.fc1.out_features,
                                   scale=None if abs(blk.attn.scale - hd ** -0.5) < 1e-12 else float(blk.attn.scale)))
    return ViTSpec(d, tuple(blocks), pe.patch_size[0], pe.img_size[0], pe.proj.in_channels, True, model.num_classes,
                   name or "dense")


def load_checkpoint_into(model: nn.Module, path: str | Path) -> None:
    """Loads a local checkpoint (``torch.load(weights_only=True)``; a state dict, or one under
    ``state_dict``/``model``/``state_dict_ema``) into a timm model, strictly.

    Raises:
        SpecError: Missing or unreadable file, or keys/shapes that do not match the model.
    """
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"--checkpoint: no such file {p}")
    try:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle and zip errors of all kinds
        raise SpecError(f"--checkpoint {p}: cannot be read with weights_only=True ({str(exc).splitlines()[0][:200]})") from None
    if isinstance(sd, dict):
        for key in ("state_dict", "model", "state_dict_ema"):
            if isinstance(sd.get(key), dict):
                sd = sd[key]
                break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise SpecError(f"--checkpoint {p}: expected a state dict of tensors")
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        first = str(exc).split("\n\t")[1] if "\n\t" in str(exc) else str(exc)
        raise SpecError(f"--checkpoint {p}: does not fit the model ({first.strip()[:300]})") from None


def dense_from_timm(model: nn.Module, *, name: str = "") -> ArchsearchViT:
    """The :class:`ArchsearchViT` equal to a timm ViT (weights copied; outputs checked to agree)."""
    spec = spec_from_timm(model, name=name)
    dense = ArchsearchViT(spec)
    load_timm_weights(dense, model)
    x = torch.randn(2, spec.in_channels, spec.resolution, spec.resolution)
    model.eval(), dense.eval()
    with torch.no_grad():
        diff = (model(x) - dense(x)).abs().max().item()
        ref = model(x).abs().max().item()
    if not diff <= 1e-4 * max(1.0, ref):
        raise SpecError(f"--model {name}: not a standard ViT layout (outputs differ by {diff:.3g} after conversion)")
    return dense


# ---------------------------------------------------------------------------------------------------
# the schedule


LatencyFn = Callable[[ViTSpec], float]


def gmacs_proxy(ms_per_mac: float) -> LatencyFn:
    """Predicted latency = whole-model MACs times ``ms_per_mac``."""
    return lambda spec: vit_macs(spec, with_head=True) * ms_per_mac


def _costs(spec: ViTSpec, latency: LatencyFn | None) -> dict[str, float]:
    return {"macs": vit_macs(spec, with_head=True), "params": vit_params(spec, with_head=True),
            "latency": latency(spec) if latency is not None else 0.0}


def _targets(budget: Budget) -> dict[str, float]:
    if budget.memory is not None:
        raise SpecError("--budget: memory is not a pruning target; accepted: macs, params, latency")
    t = {"macs": budget.macs, "params": budget.params, "latency": budget.latency_ms}
    t = {k: float(v) for k, v in t.items() if v is not None}
    if not t:
        raise SpecError("--budget: give at least one of macs, params, latency")
    return t


def _fits(costs: Mapping[str, float], goal: Mapping[str, float]) -> bool:
    return all(costs[k] <= v for k, v in goal.items())


def prune_schedule(gated: GatedViT, scores: Mapping[str, Sequence[torch.Tensor]], goal: Mapping[str, float], *,
                   eta: float, latency: LatencyFn | None) -> list[tuple[str, int, int]]:
    """Removes the lowest-ranked groups until the costs meet ``goal`` (one pruning event).

    The ranking is global over the active groups of all structures: ``I^L = I - eta * dLat`` with
    ``dLat`` the drop of ``latency`` (ms) when the group goes, recomputed after every removal since a
    group's cost depends on the other dims (without ``latency`` the ranking is the saliency alone). A
    group is skipped when it is its layer's last one.

    Returns:
        The removed groups ``(structure, layer, group)`` in order.
    """
    removed: list[tuple[str, int, int]] = []
    counts = gated.counts()
    sizes = {s: [torch.bincount(o).tolist() for o in gated.owners[s]] for s in STRUCTURES}
    spec = gated.pruned_spec(counts)
    while not _fits(_costs(spec, latency), goal):
        base = latency(spec) if eta and latency is not None else 0.0
        best, best_val = None, math.inf
        for s in STRUCTURES:
            for i, gates in enumerate(gated.gates[s]):
                active = torch.nonzero(gates.detach() != 0).flatten().tolist()
                if len(active) <= 1:
                    continue  # never a layer's last group
                for gi in active:
                    val = float(scores[s][i][gi])
                    if eta and latency is not None:
                        counts[s][i] -= sizes[s][i][gi]
                        val -= eta * (base - latency(gated.pruned_spec(counts)))
                        counts[s][i] += sizes[s][i][gi]
                    if val < best_val:
                        best, best_val = (s, i, gi), val
        if best is None:
            break  # nothing removable: the caller reports the target as unreachable
        s, i, gi = best
        with torch.no_grad():
            gated.gates[s][i][gi] = 0.0
        counts[s][i] -= sizes[s][i][gi]
        spec = gated.pruned_spec(counts)
        removed.append(best)
    return removed


def _kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    t = temperature
    return F.kl_div(F.log_softmax(student / t, -1), F.log_softmax(teacher / t, -1), log_target=True,
                    reduction="batchmean") * t * t


def _run_key(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


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


def profile(spec: ViTSpec) -> dict[str, list[int]]:
    """Kept dims per block and structure (EMB repeated per block), the redistribution profile."""
    return {"embed": [spec.embed_dim] * spec.depth, "heads": [b.heads for b in spec.blocks],
            "qk": [b.qk_dim for b in spec.blocks], "v": [b.v_dim for b in spec.blocks],
            "mlp": [b.mlp_dim for b in spec.blocks]}


def redistribution_plot(dense: Mapping[str, Sequence[int]], pruned: Mapping[str, Sequence[int]], path: str | Path,
                        *, title: str = "") -> Path:
    """Draws the dims per block of every structure, dense (dashed) and pruned (solid), one panel each
    (the NViT paper's redistribution analysis); PNG or SVG by the file suffix."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    labels = {"embed": "EMB", "heads": "heads", "qk": "QK / head", "v": "V / head", "mlp": "MLP"}
    fig, axes = plt.subplots(1, 5, figsize=(16, 3.2), constrained_layout=True)
    for ax, s in zip(axes, STRUCTURES):
        blocks = range(1, len(pruned[s]) + 1)
        ax.plot(blocks, dense[s], "--", color="0.6", label="dense")
        ax.plot(blocks, pruned[s], "o-", label="pruned")
        ax.set_title(labels[s])
        ax.set_xlabel("block")
        ax.set_ylim(bottom=0)
    axes[0].legend()
    if title:
        fig.suptitle(title)
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


# ---------------------------------------------------------------------------------------------------
# the whole command: dense model, pruning, fine-tuning, outputs


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
    from archsearch.train.trainer import _evaluate, measure_latency, resolve_device, train

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
