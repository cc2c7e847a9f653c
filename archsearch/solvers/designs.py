"""Designs that no program chose: a space's classic scaled baseline, random designs, and the score of any spec.

A study that claims the programs pick better networks needs, at the same cost, the network an
engineer would have drawn without them (the *baseline*) and networks drawn at random from the same
space (*samples*), every one scored by the objective the space's program maximises. This module
gives all three for every space, through one registry of per-family implementations
(:func:`register_designs`); each returns :class:`~archsearch.solvers.Candidate` objects exactly like
a solve, so run directories of baselines and samples are read by every later command.

* :func:`score_spec` scores a spec with the objective, penalty and rho of the space's program (the
  same numbers the solver maximised: for DeepMAD spaces the space's stage weight, depth-penalty skip
  and entropy variant, not the defaults of :func:`~archsearch.objectives.deepmad_score`).
* :func:`baseline` scales the space's *reference design* (the classic network of its template,
  named in each family's docstring below) to the budget: ``uniform``: one width multiplier on every
  width, the stem included, with the reference depths; ``width``: the multiplier on the stage widths
  only (the stem keeps the reference width); ``depth``: one multiplier on every depth with the
  reference widths (a stem saturates at the top of its range). The multiplier is the largest on a 1 %
  geometric grid whose design fits every
  budget; costs grow monotonically with it (widths are rounded up or down to the channel grid
  monotonically), so bisection finds it exactly.
* :func:`sample` draws designs uniformly over the space's variables, then *repairs* each one: its
  widths are scaled by one multiplier, the largest that fits the budgets (so every sample spends the
  budget as a solve does; widths saturate at their ranges), and while the result breaks a rule of the
  space (the effectiveness bound, mostly, which deep and thin draws break) its deepest stage loses a
  block and the widths are scaled again. A draw still breaking a rule at the least depths is
  *rejected*, and so is a repeat of an earlier design. Deterministic for a seed.

Families: ``cnn`` here (its reference designs are listed at ``_CNN_REFERENCES``); ``vit`` (DeiT-S
scaled in EMB; the NViT program's score, or EMB for the ReViT rule), ``tinyvit`` (the 21M seed),
``stvit`` (the space's DeiT with the paper's token layout) and ``mci`` (the space's template) in
:mod:`archsearch.solvers.designs_vit`, whose docstring gives each one's scales and repair. Families
whose spaces fix the depth refuse ``depth``; ``revit*`` and ``stvit*`` have no width to repair, so
their random designs are uniform over the designs that fit.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Literal, NamedTuple, Sequence

import numpy as np

from archsearch.errors import SpecError
from archsearch.solvers.base import Candidate
from archsearch.space.base import ArchSpec
from archsearch.space.budget import Budget

__all__ = ["SCALES", "DesignFamily", "baseline", "reference_design", "register_designs", "sample", "score_spec"]

Scale = Literal["uniform", "width", "depth", "published"]
SCALES: tuple[str, ...] = ("uniform", "width", "depth", "published")

#: The multiplier grid: 1.01**j for j in [-_GRID, _GRID] (about 1/2000 to 2000).
_GRID = 760


class DesignFamily(NamedTuple):
    """What a family offers for designs outside the solver.

    Attributes:
        score: ``(space, spec, budget, options) -> Candidate`` with the program's score (``feasible``
            and the rule check in ``extra``).
        reference: ``(space, resolution) -> spec``: the space's classic network at multiplier 1.
        scale: ``(space, reference, kind, m) -> spec | None``: the reference scaled by ``m`` (None when
            the result leaves the space's ranges).
        draw: ``(space, rng, resolution) -> spec``: one design drawn uniformly over the variables.
        rules_ok: ``(space, spec, options) -> bool``: whether a spec obeys the space's rules (not budgets).
        shallower: ``(space, spec) -> spec | None``: one block fewer in the deepest stage (None when
            every stage is at its least depth), the sampler's repair of a rule the widths cannot mend.
        published: ``(space, resolution) -> spec | None``: the published network whose budget the space
            takes (ResNet-50 for ``deepmad-r50``), unscaled, at its own cost; None when there is none.
    """

    score: Callable[..., Candidate]
    reference: Callable[..., ArchSpec]
    scale: Callable[..., ArchSpec | None]
    draw: Callable[..., ArchSpec]
    rules_ok: Callable[..., bool]
    shallower: Callable[..., ArchSpec | None] | None = None
    published: Callable[..., ArchSpec | None] | None = None


_FAMILIES: dict[str, DesignFamily] = {}


def register_designs(family: str, designs: DesignFamily) -> None:
    """Registers a family's designs (raises on a duplicate)."""
    if family in _FAMILIES:
        raise ValueError(f"designs of family {family!r} are already registered")
    _FAMILIES[family] = designs


def _family(space: Any) -> DesignFamily:
    _load_builtin()
    if space.family not in _FAMILIES:
        raise SpecError(f"--space {space.name}: baselines and random designs are not available for the "
                        f"{space.family!r} family; available for {sorted(_FAMILIES)}")
    return _FAMILIES[space.family]


def _fits(cand: Candidate, budget: Budget) -> bool:
    for value, limit in ((cand.macs, budget.macs), (cand.params, budget.params),
                         (cand.extra.get("memory"), budget.memory), (cand.extra.get("latency_ms"), budget.latency_ms),
                         (cand.extra.get("flops"), budget.flops)):
        if limit is not None and (value is None or value > limit):
            return False
    return True


def score_spec(space: Any, spec: ArchSpec, *, budget: Budget | None = None, **options: Any) -> Candidate:
    """The candidate a spec is in ``space``: the program's score and the costs its budgets count.

    Args:
        space: A registered space.
        spec: Any spec of the space's family (hand-written, a baseline, a published model).
        budget: Budget whose keys decide which costs are checked (``extra["fits_budget"]``); default the
            space's.
        **options: Program options (DeepMAD: ``rho0``, ``depth_penalty``, ``entropy``).

    Returns:
        A :class:`Candidate` whose ``extra`` holds ``rules_ok`` (the space's rules, budgets aside),
        ``fits_budget`` and, for CNNs the DeepMAD reference code can count, ``flops`` in its counting
        (:func:`~archsearch.cost.cnn.deepmad_flops`).
    """
    if spec.family != space.family:
        raise SpecError(f"spec: a {spec.family!r} spec cannot be scored in space {space.name} ({space.family!r} family)")
    fam = _family(space)
    budget = space.budget if budget is None else budget
    cand = fam.score(space, spec, budget, options)
    if spec.family == "cnn":  # the DeepMAD reference code's count, beside the exact MACs, where it has one
        from archsearch.cost.cnn import deepmad_flops

        try:
            cand.extra["flops"] = deepmad_flops(spec)
        except SpecError:  # a max-pool stem or a basic block: no counterpart in the reference code
            pass
    cand.extra["rules_ok"] = bool(fam.rules_ok(space, spec, options))
    cand.extra["fits_budget"] = _fits(cand, budget)
    return cand


def reference_design(space: Any, *, resolution: int | None = None) -> ArchSpec:
    """The space's classic network at multiplier 1 (see each family's notes)."""
    return _family(space).reference(space, resolution)


def _largest(fits: Callable[[float], bool]) -> float | None:
    """The largest grid multiplier for which ``fits`` holds, by bisection (``fits`` is monotone)."""
    lo, hi = -_GRID, _GRID
    if not fits(1.01**lo):
        return None
    if fits(1.01**hi):
        return 1.01**hi
    while hi - lo > 1:  # invariant: fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        if fits(1.01**mid):
            lo = mid
        else:
            hi = mid
    return 1.01**lo


def _scaled(space: Any, fam: DesignFamily, base: ArchSpec, kind: str, budget: Budget,
            options: dict[str, Any]) -> tuple[ArchSpec, float] | None:
    """``base`` scaled by the largest grid multiplier whose design fits ``budget``, and that multiplier."""
    memo: dict[float, tuple[ArchSpec, Candidate] | None] = {}

    def at(m: float) -> tuple[ArchSpec, Candidate] | None:
        if m not in memo:
            spec = fam.scale(space, base, kind, m)
            memo[m] = None if spec is None else (spec, fam.score(space, spec, budget, options))
        return memo[m]

    def fits(m: float) -> bool:
        got = at(m)
        return got is not None and _fits(got[1], budget)

    m = _largest(fits)
    if m is None:
        return None
    return at(m)[0], m  # type: ignore[index]


def baseline(space: Any, budget: Budget | None = None, *, scale: Scale = "uniform", resolution: int | None = None,
             name: str = "", **options: Any) -> Candidate:
    """The space's reference design scaled the classic way to the largest that fits ``budget``.

    Args:
        space: A registered space.
        budget: Default the space's.
        scale: ``uniform`` (every width), ``width`` (stage widths, not the stem), ``depth``, or
            ``published``: the published network of the space's budget at its own cost, unscaled (it may
            exceed the budget: ``extra["fits_budget"]`` says).
        resolution: Input resolution (default the space's).
        name: The candidate's spec name (default ``<space>-baseline-<scale>``).
        **options: Program options of the score (DeepMAD: ``rho0``, ``depth_penalty``, ``entropy``).

    Returns:
        A candidate with ``extra``: ``kind`` ``baseline``, ``scale``, ``multiplier``, ``rules_ok`` (a
        classic network knows no DeepMAD effectiveness bound, so it may break it: reported, not required).

    Raises:
        SpecError: Unknown scale, or no multiplier fits the budget.
    """
    if scale not in SCALES:
        raise SpecError(f"--scale: expected one of {list(SCALES)}, got {scale!r}")
    fam = _family(space)
    budget = space.budget if budget is None else budget
    if budget.is_empty():
        raise SpecError("--budget: give at least one of macs, params, memory, latency, flops")
    if scale == "published":
        spec = fam.published(space, resolution) if fam.published is not None else None
        if spec is None:
            raise SpecError(f"--scale published: space {space.name} has no published network of its budget; "
                            f"use uniform, width or depth")
        out = score_spec(space, spec, budget=budget, **options)
        out.extra.update(kind="baseline", scale=scale, multiplier=1.0)
        return out
    base = fam.reference(space, resolution)
    found = _scaled(space, fam, base, scale, budget, options)
    if found is None:
        smallest = fam.scale(space, base, scale, 1.01**-_GRID)
        small = fam.score(space, smallest, budget, options) if smallest is not None else None
        hint = f" (the smallest {scale} scaling has macs={small.macs} and params={small.params})" if small else ""
        raise SpecError(f"budget {budget.to_text()}: no {scale} scaling of {space.name}'s reference design fits{hint}")
    spec, m = found
    spec = spec.replace(name=name or f"{space.name}-baseline-{scale}") if hasattr(spec, "name") else spec
    out = score_spec(space, spec, budget=budget, **options)
    out.extra.update(kind="baseline", scale=scale, multiplier=round(m, 6))
    return out


def sample(space: Any, budget: Budget | None = None, n: int = 10, *, seed: int = 0, resolution: int | None = None,
           max_draws: int | None = None, name: str = "", **options: Any) -> list[Candidate]:
    """``n`` random designs of the space that satisfy every budget and rule (see the module docstring).

    Args:
        space: A registered space.
        budget: Default the space's.
        n: Designs to return (1 to 1,000).
        seed: Seed of ``numpy.random.default_rng``; the same seed gives the same designs.
        resolution: Input resolution (default the space's).
        max_draws: Draws before giving up (default ``200 * n``).
        name: Prefix of the specs' names (default ``<space>-random``).
        **options: Program options (DeepMAD: ``rho0``, ``depth_penalty``, ``entropy``).

    Returns:
        Candidates in the order drawn (duplicates dropped), ``extra``: ``kind`` ``random``, ``draw``
        (the draw's index), ``multiplier`` (the repair's width multiplier).

    Raises:
        SpecError: Bad ``n`` or ``seed``, or fewer than ``n`` designs found in ``max_draws`` draws.
    """
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 1000:
        raise SpecError(f"-n: expected an integer in [1, 1000], got {n!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise SpecError(f"--seed: expected an integer in [0, 2**32), got {seed!r}")
    fam = _family(space)
    budget = space.budget if budget is None else budget
    if budget.is_empty():
        raise SpecError("--budget: give at least one of macs, params, memory, latency, flops")
    rng = np.random.default_rng(seed)
    limit = max_draws if max_draws is not None else 200 * n
    out: list[Candidate] = []
    seen: set[str] = set()
    draws = 0
    prefix = name or f"{space.name}-random"
    while len(out) < n and draws < limit:
        draws += 1
        drawn = fam.draw(space, rng, resolution)
        found = _repaired(space, fam, drawn, budget, options)
        if found is None:
            continue
        spec, m = found
        ident = _identity(spec)
        if ident in seen:
            continue
        seen.add(ident)
        spec = spec.replace(name=f"{prefix}-{len(out) + 1}") if hasattr(spec, "name") else spec
        cand = score_spec(space, spec, budget=budget, **options)
        cand.extra.update(kind="random", draw=draws, multiplier=round(m, 6), seed=seed)
        out.append(cand)
    if len(out) < n:
        raise SpecError(f"-n: found {len(out)} of {n} random designs of {space.name} within {budget.to_text()} in "
                        f"{draws} draws (the others broke the space's rules after repair or repeated a design already drawn); "
                         f"ask for fewer or loosen the budget")
    return out


def _repaired(space: Any, fam: DesignFamily, drawn: ArchSpec, budget: Budget,
              options: dict[str, Any]) -> tuple[ArchSpec, float] | None:
    """The repair of a drawn design: widths scaled by the largest multiplier that fits the budgets; while
    the result breaks a rule (typically the effectiveness bound, which deep, thin designs break), the
    deepest stage loses one block and the widths are scaled again; None when no depth is left to take."""
    spec = drawn
    for _ in range(256):
        found = _scaled(space, fam, spec, "width_all", budget, options)
        if found is not None and fam.rules_ok(space, found[0], options):
            return found
        spec = fam.shallower(space, spec) if fam.shallower is not None else None
        if spec is None:
            return None
    return None


def _identity(spec: ArchSpec) -> str:
    import json

    data = spec.to_dict()
    data.pop("name", None)
    return json.dumps(data, sort_keys=True)


# --------------------------------------------------------------------------------------------- CNN
def _grid_round(value: float, m: int) -> int:
    """``value`` rounded to the nearest multiple of ``m`` (at least ``m``): monotone in ``value``."""
    return max(m, int(math.floor(value / m + 0.5)) * m)


def _cnn_program(space: Any, budget: Budget, options: dict[str, Any], resolution: int | None = None) -> Any:
    return _cnn_program_cached(space, budget, options.get("rho0"), options.get("depth_penalty", True),
                               options.get("entropy", "code"), resolution, options.get("last_stage_weight"),
                               options.get("penalty_weight"))


@functools.lru_cache(maxsize=64)
def _cnn_program_cached(space: Any, budget: Budget, rho0: float | None, depth_penalty: bool, entropy: str,
                        resolution: int | None, last_stage_weight: float | None = None,
                        penalty_weight: float | None = None) -> Any:
    from archsearch.solvers.deepmad.program import DeepMADProgram

    return DeepMADProgram(space, budget, rho0=rho0, resolution=resolution, depth_penalty=depth_penalty,
                          entropy=entropy, last_stage_weight=last_stage_weight,  # type: ignore[arg-type]
                          penalty_weight=penalty_weight)


def _on_template(space: Any, spec: Any) -> bool:
    return (not getattr(spec.stem, "pool", False) and spec.stem.stride == space.stem_stride
            and spec.stem.kernel == space.stem_kernel and spec.stem.in_channels == space.in_channels
            and tuple(s.stride for s in spec.stages) == tuple(space.strides)
            and spec.head_channels == getattr(space, "head_channels", 0)
            and all(s.block == space.block and s.se == space.se
                    and getattr(s, "shortcut", "auto") == getattr(space, "shortcut", "auto") for s in spec.stages))


def _cnn_score(space: Any, spec: Any, budget: Budget, options: dict[str, Any]) -> Candidate:
    from archsearch import cost
    from archsearch.objectives.deepmad import deepmad_score

    head = space.budget_counts == "model"
    if _on_template(space, spec):  # the program's closed form: the same figures, without building layer lists
        prog = _cnn_program(space, budget, options, spec.resolution)
        ev = prog.evaluate(prog.from_spec(spec))
        extra: dict[str, Any] = {"entropy": ev.entropy, "penalty": ev.penalty, "memory": ev.memory}
        if budget.latency_ms is not None:
            extra["latency_ms"] = ev.latency
        if budget.flops is not None:
            extra["flops"] = ev.flops
        return Candidate(spec, ev.score, ev.macs, ev.params, ev.rho, extra)
    sc = deepmad_score(spec, last_stage_weight=space.last_stage_weight, penalty_skip=space.penalty_skip,
                       depth_penalty_on=options.get("depth_penalty", True), entropy=options.get("entropy", "code"))
    if getattr(space, "score", "deepmad") == "madnas":  # the reference's madnas score, no depth penalty
        from archsearch.objectives.deepmad import madnas_score

        value = (options.get("last_stage_weight") or space.last_stage_weight) * madnas_score(spec, entropy=options.get("entropy", "code"))
        sc = sc._replace(score=value, entropy=value, penalty=0.0)
    extra = {"entropy": sc.entropy, "penalty": sc.penalty, "memory": cost.activation_memory(spec)}
    if budget.latency_ms is not None:
        from archsearch.cost.latency import predict_latency, require_latency_model

        extra["latency_ms"] = predict_latency(spec, require_latency_model(space.name))
    return Candidate(spec, sc.score, cost.macs(spec, with_head=head), cost.params(spec, with_head=head), sc.rho, extra)


def _cnn_rules_ok(space: Any, spec: Any, options: dict[str, Any]) -> bool:
    if not _on_template(space, spec):
        return False
    prog = _cnn_program(space, Budget(macs=10**18), options, spec.resolution)
    d = prog.from_spec(spec)
    return prog.is_valid(d) and prog.evaluate(d).rho <= prog.rho0 * (1 + 1e-12)


#: Reference designs of the built-in CNN spaces: (stem width, per-superblock (out, inner, kernel, depth)).
#: deepmad-r18/r34/r50: ResNet-50 (He et al., CVPR 2016, Table 1) laid onto the DeepMAD template (stem
#: s2 in place of the stem and max-pool, stage 3's six blocks split over its stride-2 and stride-1
#: superblocks), inner width out/4. deepmad-mbv2: MobileNetV2 (Sandler et al., CVPR 2018, Table 2)
#: with the stem at 16 channels (the template's widths never decrease), inner width t * c_in.
#: deepmad-cifar / deepmad-fmnist: the bottleneck ResNet for small images (He et al., ECCV 2016,
#: "Identity Mappings": stem 16, stages of 64/128/256 with inner width out/4), two blocks a stage as
#: ResNet-18 has. deepmad-mbv2 (the reference code's MobileNetV2-like space): the initial network of its config
#: (TinyNAS ``configs/classification/MBV2_FLOPs.py``: stem 16, one block a superblock, k 3, inner width 2 out).
_CNN_REFERENCES: dict[str, tuple[int, tuple[tuple[int, int, int, int], ...]]] = {
    "resnet50-template": (64, ((256, 64, 3, 3), (512, 128, 3, 4), (1024, 256, 3, 3), (1024, 256, 3, 3), (2048, 512, 3, 3))),
    "mbv2": (16, ((16, 16, 3, 1), (24, 96, 3, 2), (32, 144, 3, 3), (64, 192, 3, 4), (96, 384, 3, 3), (160, 576, 3, 3),
                  (320, 960, 3, 1))),
    "small": (16, ((64, 16, 3, 2), (128, 32, 3, 2), (256, 64, 3, 2))),
    "mbv2-reference": (16, ((24, 48, 3, 1), (48, 96, 3, 1), (64, 128, 3, 1), (96, 192, 3, 1), (192, 384, 3, 1))),
}


def _cnn_reference_key(space: Any) -> str:
    if space.block == "k1dwk1" and len(space.strides) == 7:
        return "mbv2"
    if space.block == "k1dwk1" and len(space.strides) == 5:
        return "mbv2-reference"
    if len(space.strides) == 5:
        return "resnet50-template"
    if len(space.strides) == 3:
        return "small"
    raise SpecError(f"--space {space.name}: no reference design for a {len(space.strides)}-superblock {space.block} "
                    f"template; baselines know the ResNet-50, MobileNetV2 and small-image templates")


def _cnn_reference(space: Any, resolution: int | None) -> Any:
    from archsearch.space.cnn import CNNSpec, StageSpec, StemSpec

    c0, stages = _CNN_REFERENCES[_cnn_reference_key(space)]
    kernels = space.kernels
    specs, prev = [], c0
    for (out, b, k, L), s in zip(stages, space.strides):
        k = k if k in kernels else kernels[0]
        specs.append(StageSpec(space.block, prev, out, b, k, s, L, space.se, shortcut=space.shortcut))
        prev = out
    return CNNSpec(StemSpec(c0, space.in_channels, space.stem_kernel, space.stem_stride), tuple(specs),
                   resolution or space.resolution, space.num_classes, f"{space.name}-reference",
                   head_channels=space.head_channels)


def _cnn_scale(space: Any, base: Any, kind: str, m: float) -> Any:
    """Scales a CNN spec; ``width_all`` (the sampler's repair) is ``uniform`` with every inner width kept
    inside the space's ratio range."""
    from archsearch.space.cnn import CNNSpec

    g = space.channel_multiple
    saturate = kind == "width_all"

    def fit(value: int, lo: int, hi: int) -> int | None:
        # below the range: its floor; above: its ceiling for the sampler's repair, else out of the space.
        # Both keep every width non-decreasing in m, so the costs stay monotone in the multiplier.
        if value > hi:
            return hi if saturate else None
        return max(value, lo)

    # the stem saturates at the top of its range (a paper space caps it at 32 where ResNet-50 has 64)
    c0 = min(max(base.stem.out_channels if kind in ("width", "depth") else _grid_round(m * base.stem.out_channels, g),
                 space.stem_widths[0]), space.stem_widths[1])
    prog = _cnn_program(space, Budget(macs=10**18), {}, base.resolution)
    stages, prev = [], c0
    for st in base.stages:
        if kind == "depth":
            out, b, L = st.out_channels, st.bottleneck, max(1, int(math.floor(m * st.depth + 0.5)))
            if L > space.depths[1]:
                return None
        else:
            o = fit(_grid_round(m * st.out_channels, g), *space.widths)
            if o is None:
                return None
            out, b, L = o, _grid_round(m * st.bottleneck, g), st.depth
            if space.bottleneck_grid:  # the grid's inner width nearest the scaled one (its ratio, near enough)
                b = prog.snap_b(out, m * st.bottleneck)
            elif saturate:
                lo, hi = prog.b_range(out)
                b = min(max(b, lo), hi)
        stages.append(dataclasses.replace(st, in_channels=prev, out_channels=out, bottleneck=b, depth=L))
        prev = out
    if prog.max_layers and prog.layers(tuple(st.depth for st in stages)) > prog.max_layers:
        return None  # past the space's conv-layer limit (stem, 3 a block, head conv): out of the space
    stem = dataclasses.replace(base.stem, out_channels=c0)
    return CNNSpec(stem, tuple(stages), base.resolution, base.num_classes, base.name, head_channels=base.head_channels)


def _cnn_draw(space: Any, rng: np.random.Generator, resolution: int | None) -> Any:
    """Uniform, in order: the stem width on its grid; per superblock the output width on the grid of
    [max(lo, previous), min(hi, max_width_ratio * previous)], the inner width on the grid of its ratio
    range, the kernel, the depth (the first superblock's at most ``first_depth_max``)."""
    from archsearch.space.cnn import CNNSpec, StageSpec, StemSpec

    g = space.channel_multiple

    def on_grid(lo: float, hi: float) -> int:
        a, b = max(g, math.ceil(lo / g - 1e-9) * g), math.floor(hi / g + 1e-9) * g
        return int(rng.integers(a // g, max(a, b) // g + 1)) * g

    c0 = on_grid(*space.stem_widths)
    prog = _cnn_program(space, Budget(macs=10**18), {}, resolution)
    stages, prev = [], c0
    for i, s in enumerate(space.strides):
        out = on_grid(max(space.widths[0], prev), min(space.widths[1], space.max_width_ratio * prev))
        b = int(rng.choice(prog.b_options(out))) if space.bottleneck_grid else on_grid(*prog.b_range(out))
        k = int(rng.choice(space.kernels))
        hi = space.first_depth_max if i == 0 else space.depths[1]
        L = int(rng.integers(space.depths[0], hi + 1))
        stages.append(StageSpec(space.block, prev, out, b, k, s, L, space.se, shortcut=space.shortcut))
        prev = out
    return CNNSpec(StemSpec(c0, space.in_channels, space.stem_kernel, space.stem_stride), tuple(stages),
                   resolution or space.resolution, space.num_classes, "", head_channels=space.head_channels)


def _cnn_shallower(space: Any, spec: Any) -> Any:
    depths = [s.depth for s in spec.stages]
    i = max(range(len(depths)), key=lambda j: (depths[j], j))
    if depths[i] <= space.depths[0]:
        return None
    stages = list(spec.stages)
    stages[i] = dataclasses.replace(stages[i], depth=depths[i] - 1)
    return dataclasses.replace(spec, stages=tuple(stages))


def _cnn_published(space: Any, resolution: int | None) -> Any:
    """ResNet-18/34/50 (He et al., CVPR 2016; exactly timm's ``resnet*``) for the spaces of their budgets."""
    from archsearch.space.resnet import resnet_spec

    depth = {"deepmad-r18": 18, "deepmad-r34": 34, "deepmad-r50": 50}.get(space.name.removesuffix("-plus"))
    if depth is None:
        return None
    return resnet_spec(depth, num_classes=space.num_classes, resolution=resolution or space.resolution)


register_designs("cnn", DesignFamily(_cnn_score, _cnn_reference, _cnn_scale, _cnn_draw, _cnn_rules_ok, _cnn_shallower,
                                     _cnn_published))


def _load_builtin() -> None:
    """Families registered in other modules (one line per family)."""
    import importlib

    for module in ("archsearch.solvers.designs_vit",):  # vit, tinyvit, stvit, mci
        importlib.import_module(module)


def candidates_record(cands: Sequence[Candidate]) -> list[dict[str, Any]]:
    """Candidates as ``candidates.json`` entries (with ``kind`` at the top level of each)."""
    out = []
    for c in cands:
        d = c.to_dict()
        d["kind"] = c.extra.get("kind", "designed")
        out.append(d)
    return out

