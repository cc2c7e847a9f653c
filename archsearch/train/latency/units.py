"""The units a calibration times, each with the input it runs on and its features.

* CNN, ViT and STViT units are built alone with the modules of :mod:`archsearch.models` (stem, block
  and head; patch embedding, transformer block and head; the cross-attention layer on fixed context
  tokens), from configurations drawn from random designs of the space, on a random input.
* MCi and TinyViT units are the submodules of built random models, on the inputs a forward pass
  gives them (forward pre-hooks): every model gives its stem, downsampling and head, a random block
  of each kind and a few more.

Every unit carries its features (:mod:`archsearch.cost.latency`), so each timing is a row of the
predictor's fit; a unit made of several modules is timed module by module and summed.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Iterable

import torch
from torch import nn

from archsearch.cost.latency import (block_features, cross_features, head_features, patch_embed_features, stem_features,
                                     vit_block_features, vit_head_features)
from archsearch.errors import SpecError
from archsearch.train.latency.random_designs import _design_within_budget, _mult, random_stvit_spec, random_vit_spec

UnitBuilder = Callable[[str, dict[str, Any]], tuple[nn.Module, tuple[int, ...], tuple[float, ...]]]


Timed = tuple[str, tuple[float, ...], list[tuple[nn.Module, torch.Tensor]]]  # unit type, features, modules with inputs


def _alone(units: list[tuple[str, dict[str, Any]]], build: UnitBuilder, *, batch: int, device: torch.device) -> list[Timed]:
    """Each unit configuration built alone, with a random input."""
    out: list[Timed] = []
    for unit, cfg in units:
        mod, shape, f = build(unit, cfg)
        out.append((unit, f, [(mod.to(device), torch.randn(batch, *shape, device=device))]))
    return out


# -- CNN: stem, blocks, head, built alone


def _unit_samples(space: Any, resolution: int, samples: int, rng: random.Random, max_width: int | None) -> list[tuple[str, dict[str, Any]]]:
    """Unit configurations to time: every superblock position gets first and repeated blocks, drawn from
    random designs within the space's budgets."""
    from archsearch.solvers.deepmad.program import DeepMADProgram
    from archsearch.space.budget import Budget

    prog = DeepMADProgram(space, Budget(), resolution=resolution)
    out: list[tuple[str, dict[str, Any]]] = []
    for _ in range(max(4, samples // 8)):
        c0 = _mult(rng, space.stem_widths[0], space.stem_widths[1], prog.m)
        out.append(("stem", dict(c_in=prog.cin0, c_out=c0, kernel=prog.ks, stride=space.stem_stride, r_in=resolution)))
    for j in range(samples):
        d = _design_within_budget(space, rng, max_width)
        i = j % prog.n
        prev = d.c0 if i == 0 else d.c[i - 1]
        first = rng.random() < 0.5
        cfg = dict(c_in=prev if first else d.c[i], c_out=d.c[i], bottleneck=d.b[i], kernel=d.k[i],
                   stride=prog.strides[i] if first else 1, r_in=prog.r_in[i] if first else prog.r_out[i], se=space.se)
        out.append((space.block, cfg))
    side = prog.r_out[-1]
    if space.num_classes:
        for _ in range(max(4, samples // 8)):
            c = _mult(rng, space.widths[0], min(space.widths[1], max_width or space.widths[1]), prog.m)
            out.append(("head", dict(channels=c, side=side, num_classes=space.num_classes)))
    return out


def _cnn_unit_features(unit: str, cfg: dict[str, Any], channel_block: int = 1, kernel_exponent: float = 0.0) -> tuple[float, ...]:
    if unit == "stem":
        return stem_features(**cfg, channel_block=channel_block, kernel_exponent=kernel_exponent)
    if unit == "head":
        return head_features(**cfg)
    return block_features(unit, **cfg, channel_block=channel_block, kernel_exponent=kernel_exponent)


def _unit_module(unit: str, cfg: dict[str, Any]) -> tuple[nn.Module, tuple[int, ...], tuple[float, ...]]:
    from timm.layers import ClassifierHead

    from archsearch.models._registry import get_block
    from archsearch.models.cnn import ConvNormAct

    if unit == "stem":
        mod: nn.Module = ConvNormAct(cfg["c_in"], cfg["c_out"], cfg["kernel"], stride=cfg["stride"])
        shape = (cfg["c_in"], cfg["r_in"], cfg["r_in"])
    elif unit == "head":
        mod = ClassifierHead(cfg["channels"], cfg["num_classes"], pool_type="avg")
        shape = (cfg["channels"], cfg["side"], cfg["side"])
    else:
        mod = get_block(unit)(cfg["c_in"], cfg["c_out"], bottleneck=cfg["bottleneck"], kernel=cfg["kernel"], stride=cfg["stride"],
                              se=cfg["se"])
        shape = (cfg["c_in"], cfg["r_in"], cfg["r_in"])
    return mod, shape, _cnn_unit_features(unit, cfg)


# -- ViT: patch embedding, blocks, head, built alone


class _PatchUnit(nn.Module):
    """Patch embedding, class token and position embedding: the ViT's first unit."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int, tokens: int, class_token: bool) -> None:
        from archsearch.models.vit import PatchEmbed

        super().__init__()
        self.patch_embed = PatchEmbed(in_channels, embed_dim, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return x + self.pos_embed


class _ViTHeadUnit(nn.Module):
    """Final LayerNorm over every token, the class token (or token average) and the classifier."""

    def __init__(self, embed_dim: int, num_classes: int, class_token: bool) -> None:
        from archsearch.models.vit import LN_EPS

        super().__init__()
        self.norm = nn.LayerNorm(embed_dim, eps=LN_EPS)
        self.class_token = class_token
        self.head = nn.Linear(embed_dim, num_classes) if num_classes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        return self.head(x[:, 0] if self.class_token else x.mean(dim=1))


def _vit_unit_samples(space: Any, resolution: int, samples: int, rng: random.Random, max_width: int | None) -> list[tuple[str, dict[str, Any]]]:
    tokens = (resolution // space.patch_size) ** 2 + int(space.class_token)
    c_in = getattr(space, "in_channels", 3)
    out: list[tuple[str, dict[str, Any]]] = []
    lo, hi = space.embed_dims[0], min(space.embed_dims[1], max_width or space.embed_dims[1])
    for _ in range(max(4, samples // 8)):
        d = _mult(rng, lo, max(lo, hi), space.embed_multiple)
        out.append(("patch_embed", dict(in_channels=c_in, embed_dim=d, patch_size=space.patch_size, resolution=resolution,
                                        class_token=space.class_token)))
    for _ in range(samples):
        spec = random_vit_spec(space, rng, resolution=resolution, max_embed=max_width)
        b = spec.blocks[rng.randrange(len(spec.blocks))]
        out.append(("vit_block", dict(embed_dim=spec.embed_dim, heads=b.heads, qk_dim=b.qk_dim, v_dim=b.v_dim,
                                      mlp_dim=b.mlp_dim, tokens=tokens)))
    for _ in range(max(4, samples // 8)):
        d = _mult(rng, lo, max(lo, hi), space.embed_multiple)
        out.append(("vit_head", dict(embed_dim=d, tokens=tokens, num_classes=space.num_classes)))
    return out


def _vit_unit_module(unit: str, cfg: dict[str, Any], class_token: bool) -> tuple[nn.Module, tuple[int, ...], tuple[float, ...]]:
    from archsearch.models.vit import ViTBlock
    from archsearch.space.vit import ViTBlockSpec

    if unit == "patch_embed":
        tokens = (cfg["resolution"] // cfg["patch_size"]) ** 2 + int(cfg["class_token"])
        mod: nn.Module = _PatchUnit(cfg["in_channels"], cfg["embed_dim"], cfg["patch_size"], tokens, cfg["class_token"])
        return mod, (cfg["in_channels"], cfg["resolution"], cfg["resolution"]), patch_embed_features(**cfg)
    if unit == "vit_head":
        mod = _ViTHeadUnit(cfg["embed_dim"], cfg["num_classes"], class_token)
        return mod, (cfg["tokens"], cfg["embed_dim"]), vit_head_features(**cfg)
    mod = ViTBlock(cfg["embed_dim"], ViTBlockSpec(cfg["heads"], cfg["qk_dim"], cfg["v_dim"], cfg["mlp_dim"]))
    return mod, (cfg["tokens"], cfg["embed_dim"]), vit_block_features(**cfg)


# -- STViT: the ViT units and the cross-attention layer, built alone


class _CrossUnit(nn.Module):
    """A cross-attention layer timed on fixed context tokens (its second input)."""

    def __init__(self, block: nn.Module, context: torch.Tensor) -> None:
        super().__init__()
        self.block = block
        self.register_buffer("context", context)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x, self.context)


def _stvit_unit_samples(space: Any, resolution: int, samples: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """Units of random designs of the space: every layer kind at the token counts its designs use."""
    pools: dict[str, list[dict[str, Any]]] = {"patch_embed": [], "vit_block": [], "st_cross": [], "vit_head": []}
    for _ in range(max(4, samples // 4)):
        spec = random_stvit_spec(space, rng, resolution=resolution)
        d, m = spec.embed_dim, spec.mlp_dim
        pools["patch_embed"].append(dict(in_channels=spec.in_channels, embed_dim=d, patch_size=spec.patch_size,
                                         resolution=spec.resolution, class_token=spec.class_token))
        for tokens in (spec.image_tokens, spec.semantic_tokens):
            pools["vit_block"].append(dict(embed_dim=d, heads=spec.num_heads, qk_dim=spec.head_dim, v_dim=spec.head_dim,
                                           mlp_dim=m, tokens=tokens))
        pools["st_cross"].append(dict(embed_dim=d, mlp_dim=m, queries=spec.semantic_tokens, keys=spec.image_tokens,
                                      heads=spec.num_heads))
        if spec.recovery:
            pools["st_cross"].append(dict(embed_dim=d, mlp_dim=m, queries=spec.num_patches, keys=spec.semantic_tokens,
                                          heads=spec.num_heads))
        final = spec.image_tokens if spec.recovery else spec.semantic_tokens
        pools["vit_head"].append(dict(embed_dim=d, tokens=final, num_classes=spec.num_classes, class_token=spec.class_token))
    shares = {"patch_embed": max(4, samples // 8), "vit_block": samples // 2, "st_cross": samples // 2,
              "vit_head": max(4, samples // 8)}
    return [(unit, rng.choice(pools[unit])) for unit, count in shares.items() for _ in range(count)]


def _stvit_unit_module(unit: str, cfg: dict[str, Any]) -> tuple[nn.Module, tuple[int, ...], tuple[float, ...]]:
    from archsearch.models.stvit import SelfAttentionBlock, SemanticBlock

    if unit in ("patch_embed", "vit_head"):
        cfg = dict(cfg)
        class_token = cfg["class_token"] if unit == "patch_embed" else cfg.pop("class_token")
        return _vit_unit_module(unit, cfg, class_token)
    d, m = cfg["embed_dim"], cfg["mlp_dim"]
    if unit == "vit_block":
        return SelfAttentionBlock(d, cfg["heads"], m), (cfg["tokens"], d), vit_block_features(**cfg)
    mod = _CrossUnit(SemanticBlock(d, cfg["heads"], m), torch.randn(1, cfg["keys"], d))
    return mod, (cfg["queries"], d), cross_features(embed_dim=d, mlp_dim=m, queries=cfg["queries"], keys=cfg["keys"])


# -- MCi and TinyViT: units inside built random models


def _mci_modules(model: nn.Module, spec: Any) -> dict[tuple[str, int, int], list[nn.Module]]:
    """The submodules of a built MCi model behind each unit key of :func:`archsearch.cost.latency.mci_unit_keys`."""
    out: dict[tuple[str, int, int], list[nn.Module]] = {("mci_stem", -1, -1): [model.stem]}
    for i, stage in enumerate(model.stages):
        mods = [m for m in (stage.downsample, stage.pos_emb) if not isinstance(m, nn.Identity)]
        if mods:
            out[("mci_down", i, -1)] = mods
        kind = "mci_attention" if spec.token_mixers[i] == "attention" else "mci_repmixer"
        for j, block in enumerate(stage.blocks):
            out[(kind, i, j)] = [block]
    out[("mci_final", -1, -1)] = [model.final_conv, model.head]
    return out


def _tinyvit_modules(model: nn.Module, spec: Any) -> dict[tuple[str, int, int], list[nn.Module]]:
    """The submodules of a built TinyViT behind each unit key of :func:`archsearch.cost.latency.tinyvit_unit_keys`."""
    out: dict[tuple[str, int, int], list[nn.Module]] = {("tinyvit_stem", -1, -1): [model.patch_embed]}
    for i, stage in enumerate(model.stages):
        if i > 0:
            out[("tinyvit_merge", i, -1)] = [stage.downsample]
        kind = "tinyvit_mbconv" if i == 0 else "tinyvit_block"
        for j, block in enumerate(stage.blocks):
            out[(kind, i, j)] = [block]
    out[("tinyvit_head", -1, -1)] = [model.head]
    return out


def _units_in_models(draw: Callable[[], Any], modules: Callable[[nn.Module, Any], dict[tuple[str, int, int], list[nn.Module]]],
                     keys: Callable[[Any], list[tuple[str, int, int]]], units: Callable[[Any], Iterable[tuple[str, tuple[float, ...]]]],
                     rng: random.Random, count: int, res: int, batch: int, dev: torch.device) -> list[Timed]:
    """``count`` units inside random built models (MCi, TinyViT): every model gives the units that are
    no block (block index -1: stem, downsampling, head), a random block of each kind and a few more,
    each with the input a forward pass gave it (forward pre-hooks).

    Args:
        draw: A random spec of the space.
        modules: The submodules of a built model behind each unit key.
        keys: The unit keys of a spec in execution order; ``units``: their ``(type, features)``.
    """
    from archsearch.models import build_model

    out: list[Timed] = []
    while len(out) < count:
        spec = draw()
        model = build_model(spec).to(dev).eval()
        mods = modules(model, spec)
        feats = dict(zip(keys(spec), (f for _, f in units(spec))))
        if set(feats) != set(mods):  # pragma: no cover  (the cost model and the module disagree)
            raise SpecError(f"internal: the {spec.family} latency units do not match the built module")
        inputs: dict[tuple[tuple[str, int, int], int], torch.Tensor] = {}
        hooks = [m.register_forward_pre_hook(lambda _m, args, k=(key, i): inputs.__setitem__(k, args[0].detach()))
                 for key, ms in mods.items() for i, m in enumerate(ms)]
        with torch.no_grad():
            model(torch.randn(batch, spec.in_channels, res, res, device=dev))
        for h in hooks:
            h.remove()
        fixed = [k for k in feats if k[2] < 0]  # stem, downsampling, final: always
        blocks = [k for k in feats if k[2] >= 0]
        chosen = [rng.choice([k for k in blocks if k[0] == kind]) for kind in sorted({k[0] for k in blocks})]
        rest = [k for k in blocks if k not in chosen]
        chosen += rng.sample(rest, min(len(rest), max(0, count // 8 - len(chosen))))
        for key in fixed + chosen:
            out.append((key[0], feats[key], [(m, inputs[(key, i)]) for i, m in enumerate(mods[key])]))
    return out[:count]

