"""Baselines, random designs and scores of the transformer families (vit, tinyvit, stvit, mci).

Each family registers a :class:`~archsearch.solvers.designs.DesignFamily` at import (listed in
:func:`archsearch.solvers.designs._load_builtin`). The score of a spec is the objective its space's
solver maximises, computed by the solver's own functions, with the costs its budget counts:

========  ===================  ==========================================================================
family    solver               score
========  ===================  ==========================================================================
vit       ``nvit-program``     :meth:`NViTProgram.score` (the weighted attention entropy, the space's priors
                               or the ``priors`` option)
vit       ``revit-rule``       EMB (the rule's only variable)
tinyvit   ``tinyvit-contract``  :func:`~archsearch.objectives.tinyvit_capacity`
stvit     ``stvit-enum``       the attention interactions kept (:func:`~archsearch.solvers.stvit.evaluate_design`)
mci       ``mci-enum``         :func:`~archsearch.objectives.mci.mci_score` with the space's last-stage weight;
                               ``rho0`` (option) is one of the space's rules
========  ===================  ==========================================================================

Reference designs and the scales each family accepts (``uniform`` and ``width`` coincide: these
families have no stem width apart from the first stage's):

* **vit** (``nvit``, ``revit*``): DeiT-S (Touvron et al., "Training data-efficient image
  transformers", ICML 2021): EMB 384, 12 blocks of EMB/64 heads with query/key and value widths 64
  per head and an MLP of 4 EMB. ``uniform``/``width`` put EMB on the space's grid and let the heads
  follow (EMB/64, rounded); ``depth`` is refused (both programs fix the depth).
* **tinyvit**: the 21M seed (Wu et al., "TinyViT", ECCV 2022, Table 1; ``TINYVIT_21M``): embed dims
  times the multiplier, each on its stage's grid (``seed - 32 k``); ``depth`` scales the per-stage
  depths onto the space's depth choices (only where the space has any: ``tinyvit-depth``).
* **stvit**: the space's DeiT with the paper's layout (Chang et al., CVPR 2023: 4 image-token
  layers, 2 semantic-token layers, 16 semantic tokens; ``STVIT_DEIT_LAYOUT``); ``uniform``/``width``
  scale the head width on a grid of 8 with the space's heads; ``depth`` is refused. The space fixes
  the width, so a baseline whose width differs from it is no design of the space (``rules_ok``
  false), and its score, which ignores width, compares only the token layout.
* **mci**: the space's MCi template (``mci_template``; timm ``fastvit_mci0/1/2``): the first width
  times the multiplier on the admissible first widths, the later widths following the template's
  ratios; ``depth`` scales the template's depths within the space's ranges.

Random designs: uniform over each space's own variables, then the repair of
:func:`~archsearch.solvers.designs.sample`. The ``nvit``, ``tinyvit*`` and ``mci`` spaces have widths
to scale; ``revit*`` (EMB is the only variable) and ``stvit*`` (the width is fixed) have none, so
their repair keeps the drawn design (multiplier 1) and a draw over the budget is rejected: their
samples are uniform over the designs that fit.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import math
from typing import Any, Sequence

import numpy as np

from archsearch.errors import SpecError
from archsearch.solvers.base import Candidate
from archsearch.solvers.designs import DesignFamily, register_designs
from archsearch.space.budget import Budget

__all__: list[str] = []


# --------------------------------------------------------------------------------------------- shared
def _pick(choices: Sequence[int], x: float, *, saturate: bool) -> int | None:
    """The choice nearest ``x`` (ties go up), the smallest below the range, and above it the largest
    (``saturate``) or None (the design leaves the space). Non-decreasing in ``x``."""
    if x > choices[-1] + 1e-9:
        return choices[-1] if saturate else None
    i = bisect.bisect_left(choices, x)
    if i == 0:
        return choices[0]
    lo, hi = choices[i - 1], choices[i]
    return hi if x - lo >= hi - x else lo


def _options(space: Any, options: dict[str, Any]) -> None:
    from archsearch.solvers.base import get_solver

    accepted = get_solver(space.solver).options
    unknown = sorted(k for k in options if k not in accepted)
    if unknown:
        raise SpecError(f"options {unknown}: not options of the {space.solver} program of {space.name}; "
                        f"it takes {list(accepted)}")


def _latency(space: Any, spec: Any, budget: Budget) -> dict[str, Any]:
    if budget.latency_ms is None:
        return {}
    from archsearch.cost.latency import predict_latency, require_latency_model

    return {"latency_ms": predict_latency(spec, require_latency_model(space.name))}


def _refuse(kind: str, family: str, accepted: str, why: str) -> SpecError:
    return SpecError(f"--scale {kind}: not a scaling of the {family} family here ({why}); accepted: {accepted}")


def _identity_below_one(spec: Any, m: float) -> Any:
    """The sampler's repair for spaces without a width to scale: the drawn design itself (multiplier 1)."""
    return spec if m <= 1.0 else None


# ------------------------------------------------------------------------------------------------ vit
def _is_nvit(space: Any) -> bool:
    from archsearch.space.nvit_templates import NViTSpace
    from archsearch.space.vit_templates import ReViTSpace

    if isinstance(space, NViTSpace):
        return True
    if isinstance(space, ReViTSpace):
        return False
    raise SpecError(f"--space {space.name}: the vit designs know NViT and ReViT spaces, got {type(space).__name__}")


def _nvit_program(space: Any, options: dict[str, Any]) -> Any:
    from archsearch.solvers.nvit import NViTProgram

    return NViTProgram(space, Budget(), priors=options.get("priors"))


@functools.lru_cache(maxsize=16)
def _nvit_valid_embs(space: Any) -> tuple[int, ...]:
    """The EMB values at which every menu of the program is non-empty (the space's priors switch)."""
    prog = _nvit_program(space, {})
    valid = tuple(d for d in prog.embed_grid() if all(prog.ranges(d).values()))
    if not valid:
        raise SpecError(f"--space {space.name}: no EMB of the space has a design (every menu empty somewhere)")
    return valid


def _vit_score(space: Any, spec: Any, budget: Budget, options: dict[str, Any]) -> Candidate:
    from archsearch.cost.vit import vit_activation_memory, vit_macs, vit_params

    _options(space, options)
    if _is_nvit(space):
        if spec.depth != space.depth:
            raise SpecError(f"spec: {spec.depth} blocks; the {space.name} program scores {space.depth}-block ViTs")
        score = _nvit_program(space, options).score(spec)
    else:
        score = float(spec.embed_dim)  # the ReViT rule's objective: the largest EMB that fits
    head = space.budget_counts == "model"
    extra = {"memory": vit_activation_memory(spec), "embed_dim": spec.embed_dim, **_latency(space, spec, budget)}
    return Candidate(spec, score, vit_macs(spec, with_head=head), vit_params(spec, with_head=head), None, extra)


def _vit_reference(space: Any, resolution: int | None) -> Any:
    """DeiT-S (Touvron et al., ICML 2021): EMB 384, 6 heads of 64, MLP 4 EMB, the space's depth."""
    from archsearch.space.vit import DEIT, ViTSpec

    d = DEIT["deit_small"]
    spec = ViTSpec.uniform(embed_dim=d["embed_dim"], depth=space.depth, heads=d["heads"], patch_size=space.patch_size,
                           resolution=resolution or space.resolution, num_classes=space.num_classes,
                           class_token=space.class_token, name=f"{space.name}-reference")
    return spec.replace(in_channels=getattr(space, "in_channels", 3))


def _vit_scale(space: Any, base: Any, kind: str, m: float) -> Any:
    """``uniform``/``width``: EMB times ``m`` on the space's grid, every block's heads and MLP following
    EMB (per-head widths kept, as DeiT-T/S/B keep 64); ``width_all`` (the sampler's repair): NViT spaces
    scale EMB and every block width onto the program's menus at the new EMB, saturating at their ends
    (every width non-decreasing in ``m``, so the costs are monotone); ReViT spaces keep the draw."""
    from archsearch.space.vit import ViTBlockSpec

    nvit = _is_nvit(space)
    if kind == "depth":
        raise _refuse(kind, "vit", "uniform, width", f"space {space.name} fixes the depth at {space.depth} blocks")
    if kind == "width_all":
        if not nvit:
            return _identity_below_one(base, m)
        prog = _nvit_program(space, {})
        d = _pick(_nvit_valid_embs(space), m * base.embed_dim, saturate=True)
        r = prog.ranges(d)
        blocks = tuple(ViTBlockSpec(*(_pick(r[key], m * value, saturate=True) for key, value in
                                      zip(("heads", "qk", "v", "mlp"), (b.heads, b.qk_dim, b.v_dim, b.mlp_dim))))
                       for b in base.blocks)
        return dataclasses.replace(base, embed_dim=d, blocks=blocks)
    if kind not in ("uniform", "width"):
        raise _refuse(kind, "vit", "uniform, width", "unknown kind")
    grid = list(range(space.embed_dims[0], space.embed_dims[1] + 1, space.embed_multiple))
    d = _pick(grid, m * base.embed_dim, saturate=False)
    if d is None:
        return None
    ratio = d / base.embed_dim
    blocks = tuple(dataclasses.replace(b, heads=max(1, math.floor(b.heads * ratio + 0.5)),
                                       mlp_dim=max(1, math.floor(b.mlp_dim * ratio + 0.5))) for b in base.blocks)
    return dataclasses.replace(base, embed_dim=d, blocks=blocks)


def _vit_draw(space: Any, rng: np.random.Generator, resolution: int | None) -> Any:
    """NViT: EMB uniform over the EMBs with a design, then every block's heads, query/key, value and MLP
    widths uniform over the program's menus at that EMB (the space's priors switch decides them). ReViT:
    EMB uniform over the grid."""
    from archsearch.space.vit import ViTBlockSpec, ViTSpec

    res = resolution or space.resolution
    if not _is_nvit(space):
        grid = space.embed_grid
        return space.spec(int(grid[int(rng.integers(len(grid)))]), resolution=res)
    valid = _nvit_valid_embs(space)
    d = valid[int(rng.integers(len(valid)))]
    r = _nvit_program(space, {}).ranges(d)
    blocks = tuple(ViTBlockSpec(*(r[key][int(rng.integers(len(r[key])))] for key in ("heads", "qk", "v", "mlp")))
                   for _ in range(space.depth))
    return ViTSpec(d, blocks, space.patch_size, res, space.in_channels, space.class_token, space.num_classes, "")


def _vit_rules_ok(space: Any, spec: Any, options: dict[str, Any]) -> bool:
    """NViT: the program's menus and priors (EMB grid, depth, per-block choices) and the space's patch,
    token, channel and class fields; the attention scale a pruned block keeps is no variable of the
    program and is ignored. ReViT: the rule's model at an EMB of the grid."""
    if spec.resolution % space.patch_size:
        return False
    if not _is_nvit(space):
        if spec.embed_dim not in space.embed_grid:
            return False
        return spec.replace(name="") == space.spec(spec.embed_dim, resolution=spec.resolution).replace(name="")
    if (spec.patch_size, spec.class_token, spec.in_channels, spec.num_classes) != (
            space.patch_size, space.class_token, space.in_channels, space.num_classes):
        return False
    blocks = tuple((b.heads, b.qk_dim, b.v_dim, b.mlp_dim) for b in spec.blocks)
    return _nvit_program(space, options).is_member(spec.embed_dim, blocks)


#: Published networks of the built-in vit spaces' budgets: DeiT-S for ``nvit`` (its budget is DeiT-S's
#: cost rounded up), ReViT-S / ReViT-T (EMB 384 / 176 under the space's rule; NViT, CVPR 2023, Table 6).
_VIT_PUBLISHED = {"nvit": "deit_small", "revit": 384, "revit-ref": 384, "revit-t": 176}


def _vit_published(space: Any, resolution: int | None) -> Any:
    which = _VIT_PUBLISHED.get(space.name)
    if which is None:
        return None
    if isinstance(which, int):
        return space.spec(which, resolution=resolution, name=f"revit-{'t' if which == 176 else 's'}")
    return _vit_reference(space, resolution).replace(name="deit-s")


register_designs("vit", DesignFamily(_vit_score, _vit_reference, _vit_scale, _vit_draw, _vit_rules_ok, None,
                                     _vit_published))


# -------------------------------------------------------------------------------------------- tinyvit
def _tinyvit_score(space: Any, spec: Any, budget: Budget, options: dict[str, Any]) -> Candidate:
    from archsearch.cost.tinyvit import tinyvit_activation_memory, tinyvit_macs, tinyvit_params
    from archsearch.objectives.tinyvit import tinyvit_capacity

    _options(space, options)
    extra = {"memory": tinyvit_activation_memory(spec), **_latency(space, spec, budget)}
    return Candidate(spec, tinyvit_capacity(spec), tinyvit_macs(spec, with_head=True),
                     tinyvit_params(spec, with_head=True), None, extra)


def _tinyvit_reference(space: Any, resolution: int | None) -> Any:
    """The space's seed (the 21M model, Wu et al., ECCV 2022, Table 1) with the space's head and resolution."""
    seed = space.seed
    return space.make_spec(seed.embed_dims, seed.depths, seed.window_sizes, resolution=resolution,
                           name=f"{space.name}-reference")


def _tinyvit_scale(space: Any, base: Any, kind: str, m: float) -> Any:
    """Dims times ``m`` on each stage's choices (above the seed's: out of the space; ``width_all``, the
    sampler's repair, saturates there instead); ``depth``: depths times ``m`` on the space's depth choices."""
    n = space.seed.n_stages
    dims, depths = tuple(base.embed_dims), tuple(base.depths)
    if kind == "depth":
        if space.depths is None:
            raise _refuse(kind, "tinyvit", "uniform, width (depth needs a space with depth choices, e.g. tinyvit-depth)",
                          f"space {space.name} keeps the seed's depths")
        got = tuple(_pick(space.depth_choices(i), m * depths[i], saturate=False) for i in range(n))
        if None in got:
            return None
        depths = got  # type: ignore[assignment]
    elif kind in ("uniform", "width", "width_all"):
        got = tuple(_pick(space.dim_choices(i), m * dims[i], saturate=kind == "width_all") for i in range(n))
        if None in got:
            return None
        dims = got  # type: ignore[assignment]
    else:
        raise _refuse(kind, "tinyvit", "uniform, width, depth", "unknown kind")
    return space.make_spec(dims, depths, base.window_sizes, resolution=base.resolution, name=base.name)


def _tinyvit_draw(space: Any, rng: np.random.Generator, resolution: int | None) -> Any:
    """Dims uniform over the non-decreasing tuples of the stages' choices (by rejection), each depth and
    window uniform over its stage's choices."""
    n = space.seed.n_stages
    while True:
        dims = tuple(int(rng.choice(space.dim_choices(i))) for i in range(n))
        if all(a <= b for a, b in zip(dims, dims[1:])):
            break
    depths = tuple(int(rng.choice(space.depth_choices(i))) for i in range(n))
    windows = tuple(int(rng.choice(space.window_choices(i))) for i in range(n))
    return space.make_spec(dims, depths, windows, resolution=resolution)


def _tinyvit_rules_ok(space: Any, spec: Any, options: dict[str, Any]) -> bool:
    n = space.seed.n_stages
    if spec.n_stages != n:
        return False
    dims, depths, windows = spec.embed_dims, spec.depths, spec.window_sizes
    if any(b < a for a, b in zip(dims, dims[1:])) or any(
            dims[i] not in space.dim_choices(i) or depths[i] not in space.depth_choices(i)
            or windows[i] not in space.window_choices(i) for i in range(n)):
        return False
    return spec.replace(name="") == space.make_spec(dims, depths, windows, resolution=spec.resolution)


def _tinyvit_shallower(space: Any, spec: Any) -> Any:
    """The deepest stage above its least depth choice takes its next smaller choice."""
    depths = list(spec.depths)
    above = [i for i in range(len(depths)) if depths[i] > min(space.depth_choices(i))]
    if not above:
        return None
    i = max(above, key=lambda j: (depths[j], j))
    depths[i] = max(c for c in space.depth_choices(i) if c < depths[i])
    return spec.replace(depths=tuple(depths))


def _tinyvit_published(space: Any, resolution: int | None) -> Any:
    """TinyViT-5M / 11M (Wu et al., ECCV 2022, Table 1) when the space's budget is its exact cost."""
    from archsearch.space.tinyvit import TINYVIT_5M, TINYVIT_11M
    from archsearch.space.tinyvit_templates import TINYVIT_5M_BUDGET, TINYVIT_11M_BUDGET

    spec = {TINYVIT_5M_BUDGET: TINYVIT_5M, TINYVIT_11M_BUDGET: TINYVIT_11M}.get(space.budget)
    if spec is None:
        return None
    return spec.replace(resolution=resolution or space.resolution, num_classes=space.num_classes)


register_designs("tinyvit", DesignFamily(_tinyvit_score, _tinyvit_reference, _tinyvit_scale, _tinyvit_draw,
                                         _tinyvit_rules_ok, _tinyvit_shallower, _tinyvit_published))


# ---------------------------------------------------------------------------------------------- stvit
def _stvit_design(space: Any, layer: int, count: int, layers: int, resolution: int | None, *, embed_dim: int | None = None,
                  heads: int | None = None, name: str = "") -> Any:
    from archsearch.space.stvit import STViTSpec

    return STViTSpec(embed_dim=embed_dim or space.embed_dim, depth=space.depth, num_heads=heads or space.num_heads,
                     mlp_ratio=space.mlp_ratio, semantic_layer=layer, num_semantic=count, semantic_layers=layers,
                     recovery=space.recovery, patch_size=space.patch_size, resolution=resolution or space.resolution,
                     in_channels=space.in_channels, class_token=space.class_token, num_classes=space.num_classes,
                     name=name)


def _stvit_score(space: Any, spec: Any, budget: Budget, options: dict[str, Any]) -> Candidate:
    from archsearch.solvers.stvit import evaluate_design

    _options(space, options)
    ev = evaluate_design(space, spec)
    return Candidate(spec, ev.score, ev.macs, ev.params, None, {"memory": ev.memory, **_latency(space, spec, budget)})


def _stvit_reference(space: Any, resolution: int | None) -> Any:
    """The space's DeiT with the paper's layout (Chang et al., CVPR 2023; ``STVIT_DEIT_LAYOUT``)."""
    from archsearch.space.stvit import STVIT_DEIT_LAYOUT

    lay = STVIT_DEIT_LAYOUT
    return _stvit_design(space, lay["semantic_layer"], lay["num_semantic"], lay["semantic_layers"], resolution,
                         name=f"{space.name}-reference")


def _stvit_scale(space: Any, base: Any, kind: str, m: float) -> Any:
    """``uniform``/``width``: the head width times ``m`` on a grid of 8 (NViT's per-head group), the heads
    kept, so EMB moves in steps of 8 heads' widths (48 for DeiT-S) and the multiplier 1 gives the space's
    own width; ``width_all`` (the sampler's repair) keeps the draw (the space's width is fixed)."""
    from archsearch.space.vit import MAX_DIM

    if kind == "width_all":
        return _identity_below_one(base, m)
    if kind not in ("uniform", "width"):
        why = f"space {space.name} fixes the depth at {space.depth} layers" if kind == "depth" else "unknown kind"
        raise _refuse(kind, "stvit", "uniform, width", why)
    head = max(8, math.floor(m * base.head_dim / 8 + 0.5) * 8)
    embed = head * base.num_heads
    if embed > MAX_DIM or int(base.mlp_ratio * embed) > MAX_DIM:
        return None
    return base.replace(embed_dim=embed)


def _stvit_choices(space: Any, resolution: int) -> list[tuple[int, int, int]]:
    """Every (semantic-token layers, pooling layer, semantic tokens) of the space, as the solver enumerates."""
    lo, hi = space.semantic_layer
    return [(s, layer, m) for s in space.semantic_layers for layer in range(lo, min(hi, space.depth - s) + 1)
            for m in space.semantic_counts(resolution)]


def _stvit_draw(space: Any, rng: np.random.Generator, resolution: int | None) -> Any:
    """Uniform over the space's designs (its semantic-token layer count, pooling layer and token count)."""
    res = resolution or space.resolution
    choices = _stvit_choices(space, res)
    s, layer, m = choices[int(rng.integers(len(choices)))]
    return _stvit_design(space, layer, m, s, res)


def _stvit_rules_ok(space: Any, spec: Any, options: dict[str, Any]) -> bool:
    if spec.resolution % space.patch_size or (spec.semantic_layers, spec.semantic_layer, spec.num_semantic) not in \
            _stvit_choices(space, spec.resolution):
        return False
    return spec.replace(name="") == _stvit_design(space, spec.semantic_layer, spec.num_semantic, spec.semantic_layers,
                                                  spec.resolution)


def _stvit_published(space: Any, resolution: int | None) -> Any:
    """STViT on the space's DeiT (Chang et al., CVPR 2023: 16 semantic tokens after 4 layers, 2 semantic layers)."""
    return _stvit_reference(space, resolution).replace(name=f"{space.name}-paper")


register_designs("stvit", DesignFamily(_stvit_score, _stvit_reference, _stvit_scale, _stvit_draw, _stvit_rules_ok,
                                       None, _stvit_published))


# ------------------------------------------------------------------------------------------------ mci
def _mci_rho0(space: Any, options: dict[str, Any]) -> float:
    rho0 = options.get("rho0")
    return space.rho0 if rho0 is None else rho0


def _mci_score(space: Any, spec: Any, budget: Budget, options: dict[str, Any]) -> Candidate:
    from archsearch.cost.mci import mci_activation_memory, mci_macs, mci_params
    from archsearch.objectives.mci import mci_score

    _options(space, options)
    sc = mci_score(spec, last_stage_weight=space.last_stage_weight)
    extra = {"stage_entropy": list(sc.stage_entropy), "memory": mci_activation_memory(spec),
             **_latency(space, spec, budget)}
    return Candidate(spec, sc.score, mci_macs(spec, with_head=True), mci_params(spec, with_head=True), sc.rho, extra)


def _mci_reference(space: Any, resolution: int | None) -> Any:
    """The space's MCi template (timm ``fastvit_mci0/1/2``; Vasu et al., MobileCLIP, CVPR 2024)."""
    tpl = space.spec_template()
    return space.make_spec(tpl.dims, tpl.depths, resolution=resolution, name=f"{space.name}-reference")


@functools.lru_cache(maxsize=256)
def _mci_first_widths(space: Any, ratios: tuple[int, ...]) -> tuple[int, ...]:
    """The first widths ``d`` with which ``d * ratios`` is an admissible width tuple of the space."""
    tuples = set(space.dim_choices())
    return tuple(d for d in range(space.first_dims[0], space.first_dims[1] + 1, space.dim_multiple)
                 if tuple(d * r for r in ratios) in tuples)


def _mci_scale(space: Any, base: Any, kind: str, m: float) -> Any:
    """Widths: the first times ``m`` on the admissible first widths, the others at the base's ratios to it
    (beyond the largest: out of the space, or saturated for the sampler's ``width_all``); ``depth``: every
    depth times ``m`` (at least the range's floor; above its ceiling: out of the space)."""
    dims, depths = tuple(base.dims), tuple(base.depths)
    if kind == "depth":
        got = tuple(_pick(range(lo, hi + 1), m * L, saturate=False) for L, (lo, hi) in zip(depths, space.depths))
        if None in got:
            return None
        depths = got  # type: ignore[assignment]
    elif kind in ("uniform", "width", "width_all"):
        if any(d % dims[0] for d in dims):
            raise SpecError(f"mci scale: every width must be a multiple of the first, got {dims}")
        ratios = tuple(d // dims[0] for d in dims)
        firsts = _mci_first_widths(space, ratios)
        first = _pick(firsts, m * dims[0], saturate=kind == "width_all") if firsts else None
        if first is None:
            return None
        dims = tuple(first * r for r in ratios)
    else:
        raise _refuse(kind, "mci", "uniform, width, depth", "unknown kind")
    return space.make_spec(dims, depths, resolution=base.resolution, name=base.name)


def _mci_draw(space: Any, rng: np.random.Generator, resolution: int | None) -> Any:
    """The width tuple uniform over the space's admissible tuples, each depth uniform over its range."""
    choices = space.dim_choices()
    dims = choices[int(rng.integers(len(choices)))]
    depths = tuple(int(rng.integers(lo, hi + 1)) for lo, hi in space.depths)
    return space.make_spec(dims, depths, resolution=resolution)


def _mci_rules_ok(space: Any, spec: Any, options: dict[str, Any]) -> bool:
    """Admissible widths, depths in range, the template's structure, and ``rho <= rho0`` in the solver's form."""
    from archsearch.objectives.mci import mci_score

    if tuple(spec.dims) not in set(space.dim_choices()) or len(spec.depths) != len(space.depths) or any(
            not lo <= L <= hi for L, (lo, hi) in zip(spec.depths, space.depths)):
        return False
    if spec.replace(name="") != space.make_spec(spec.dims, spec.depths, resolution=spec.resolution):
        return False
    sc = mci_score(spec, last_stage_weight=space.last_stage_weight)
    n, logfan = sc.layers, sc.log_fan_in  # the solver's test of rho <= rho0 (archsearch.solvers.mci._rho_ok)
    return n * math.log(n / _mci_rho0(space, options)) <= logfan + 1e-9 * abs(logfan)


def _mci_shallower(space: Any, spec: Any) -> Any:
    depths = list(spec.depths)
    above = [i for i, (lo, _) in enumerate(space.depths) if depths[i] > lo]
    if not above:
        return None
    i = max(above, key=lambda j: (depths[j], j))
    depths[i] -= 1
    return spec.replace(depths=tuple(depths))


def _mci_published(space: Any, resolution: int | None) -> Any:
    """The template itself (``mci``'s budget is MCi0's cost)."""
    return _mci_reference(space, resolution).replace(name=space.template)


register_designs("mci", DesignFamily(_mci_score, _mci_reference, _mci_scale, _mci_draw, _mci_rules_ok, _mci_shallower,
                                     _mci_published))
