"""The gated model: a dense ViT with one gate per group, whose derivatives are the groups' saliencies.

Every group S has a gate ``g_S = 1`` that multiplies *every* parameter indexed by it (the parameters
its removal deletes): ``w_eff = w * product of the gates indexing w``. At ``g = 1`` the derivative
of the loss with respect to a gate is ``dL/dg_S = sum_{s in S} w_s dL/dw_s``, so NViT's Hessian-norm
saliency estimate is the squared gate derivative (Yang et al., CVPR 2023):

    hessian:    I_S = (sum_{s in S} w_s dL/dw_s / c)^2 = (dL/dg_S / c)^2
    magnitude:  I_S = (||w_S||_2 / c)^2                   (on the weights still in use; the baseline)

with ``c`` the structure's normaliser (:mod:`archsearch.train.prune.config`). A gate at 0 removes its
group; the gated forward computes every LayerNorm's statistics over the kept EMB channels only, so
a gated model with some gates at zero computes what the physically pruned model computes.
:meth:`GatedViT.physical` then slices the kept weights into the
:class:`~archsearch.models.vit.ArchsearchViT` of the pruned spec, each block keeping the dense
block's attention scale in ``ViTBlockSpec.scale``.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.errors import SpecError
from archsearch.models.vit import ArchsearchViT, load_timm_weights
from archsearch.space.vit import ViTBlockSpec, ViTSpec
from archsearch.train.prune.config import DEFAULT_GROUPS, DEFAULT_NORMALISERS, STRUCTURES, Criterion

__all__ = ["GatedViT", "smallest_spec"]


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
