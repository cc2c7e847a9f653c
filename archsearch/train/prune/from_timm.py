"""The dense model: a timm ``VisionTransformer`` as the :class:`~archsearch.models.vit.ArchsearchViT` of its spec.

Pruning works on archsearch's own ViT module, whose spec the cost models price. A timm ViT with a
class token, token pooling and standard blocks (no register tokens, layer scale, QK norm, pre-norm,
``fc_norm`` or attention pooling; a plain square patch embedding) converts to it with its weights
copied, and the conversion is checked on a random batch (outputs within ``1e-4`` relative). Local
checkpoints load strictly, with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from archsearch.errors import SpecError
from archsearch.models.vit import ArchsearchViT, load_timm_weights
from archsearch.space.vit import ViTBlockSpec, ViTSpec

__all__ = ["dense_from_timm", "load_checkpoint_into", "spec_from_timm"]


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
