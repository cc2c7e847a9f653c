"""The DeepMAD mathematical program over a CNN template.

Shen et al., "DeepMAD", CVPR 2023: maximise the network entropy score S (optionally minus the
depth penalty) subject to the MACs/params (/memory) budgets, the effectiveness bound
``rho <= rho0``, non-decreasing widths, ``in <= out <= 4 in``, ``b / out`` in the template's range,
channel multiples and the depth/kernel sets.

A design is ``(c0, c, b, k, L)``: stem width, and per superblock output width, inner width,
kernel and depth. Structure that the solver uses (see :mod:`archsearch.solvers.deepmad`, whose files are named for these concepts):

* for fixed depths and kernels, MACs and params are posynomials in the widths, hence convex
  constraints in the log-widths ``z``;
* ``sum over layers of log(c k^2 / g)`` is linear in ``z``, so ``rho <= rho0`` (one constraint per
  stage prefix: ``sum log(c k^2/g) >= n log(n / rho0)``) is linear in ``z``;
* the score is ``sum_s alpha_s (log C_s + 2 log R_s) E_s(z)``: bilinear. With the stage factors
  replaced by their upper bounds over a box of stage widths it becomes linear, and the problem
  a geometric program; that is the relaxation a branch-and-bound node solves.

A space may also carry the DeepMAD reference code's MobileNetV2-like rules (``deepmad-mbv2``): inner widths
on a ratio grid (``b = smart_round(r out)``), a fixed 1x1 head conv (its costs, and its entropy and width in
the last stage), a limit on the conv layers, and the reference's ``madnas`` score
``alpha_last (E_last + log C_last)`` in place of the stage products (linear in ``z``; no depth penalty).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Any, Literal, NamedTuple

from archsearch.errors import SpecError
from archsearch.solvers.constants import FreeConstant
from archsearch.objectives.deepmad import DEPTH_PENALTY_SCALE, depth_penalty, stage_ends
from archsearch.space.budget import Budget
from archsearch.space.cnn import CNNSpec, StageSpec, StemSpec, conv_out, se_channels
from archsearch.space.search_space import SearchSpace, deepmad_smart_round

__all__ = ["Design", "Evaluation", "DeepMADProgram", "FREE_CONSTANTS"]

#: The constants DeepMAD fixed by hand for ImageNet (Shen et al., CVPR 2023, and its reference code), which
#: ``archsearch tune`` may fit to a user's data. The entropy variant (``code``/``paper``) is left out: it
#: scales the score by 2, which the penalty weight already spans.
FREE_CONSTANTS = (
    FreeConstant("rho0", "float", 0.1, 0.8, default=lambda space: space.rho0,
                 doc="effectiveness bound rho <= rho0 (the paper: 0.3 for ResNet-level models, 0.5 for depthwise ones)"),
    FreeConstant("last_stage_weight", "float", 1.0, 16.0, log=True, default=lambda space: space.last_stage_weight,
                 doc="the last stage's weight in the entropy score, the others weigh 1 (the paper: 8)"),
    FreeConstant("penalty_weight", "float", 0.0, 40.0, default=10.0,
                 doc="w of the depth penalty w exp(std(L)) (the reference search: 10)"),
)


class Design(NamedTuple):
    """A point of the discrete space: stem width and per-superblock (out, inner, kernel, depth)."""

    c0: int
    c: tuple[int, ...]
    b: tuple[int, ...]
    k: tuple[int, ...]
    L: tuple[int, ...]


class Evaluation(NamedTuple):
    """Exact figures of a design (costs count what the space's budget counts)."""

    macs: int
    params: int
    memory: int
    entropy: float
    penalty: float
    score: float
    rho: float
    feasible: bool
    violation: float
    latency: float = 0.0  # predicted ms (0 when the budget has no latency limit)
    flops: int = 0  # the DeepMAD reference code's FLOPs (0 when the budget has no flops limit)


class DeepMADProgram:
    """The DeepMAD program of a space under a budget (pure numpy; no torch).

    Args:
        space: A CNN template.
        budget: MACs/params/memory/latency/flops limits (flops: the DeepMAD reference code's count,
            :meth:`flops`). Latency needs the space's calibration
            (``archsearch calibrate``); it is checked on every evaluated design (feasibility and
            repair) and enters the branch-and-bound relaxation as a posynomial row.
        rho0: Effectiveness bound; default the space's.
        resolution: Input resolution; default the space's.
        depth_penalty: Maximise ``S - w exp(std(L))`` (default) instead of ``S``.
        entropy: ``code`` (1/2 factor, reference code) or ``paper``.
        last_stage_weight: The last stage's weight in ``S`` (default the space's: DeepMAD's 8 at 224 px);
            the other stages weigh 1.
        penalty_weight: ``w`` of the depth penalty (default DeepMAD's 10).

    The free constants a user may tune to his data (``archsearch tune``) are :data:`FREE_CONSTANTS`.
    """

    def __init__(
        self,
        space: SearchSpace,
        budget: Budget,
        *,
        rho0: float | None = None,
        resolution: int | None = None,
        depth_penalty: bool = True,
        entropy: Literal["code", "paper"] = "code",
        last_stage_weight: float | None = None,
        penalty_weight: float | None = None,
    ) -> None:
        self.latency_model = None
        if budget.latency_ms is not None:
            from archsearch.cost.latency import require_latency_model

            self.latency_model = require_latency_model(space.name)
        self.space = space
        self.budget = budget
        self.rho0 = float(space.rho0 if rho0 is None else rho0)
        if not (0 < self.rho0 <= 100):
            raise SpecError(f"rho: expected a number in (0, 100], got {rho0!r}")
        self.resolution = int(space.resolution if resolution is None else resolution)
        if self.resolution < 8:
            raise SpecError(f"resolution: expected an integer >= 8, got {resolution!r}")
        self.penalty_weight = float(DEPTH_PENALTY_SCALE if penalty_weight is None else penalty_weight)
        if not (0 <= self.penalty_weight <= 1e6):
            raise SpecError(f"penalty_weight: expected a number in [0, 1e6], got {penalty_weight!r}")
        self.use_penalty = bool(depth_penalty) and self.penalty_weight > 0
        last = float(space.last_stage_weight if last_stage_weight is None else last_stage_weight)
        if not (0 < last <= 1e6):
            raise SpecError(f"last_stage_weight: expected a number in (0, 1e6], got {last_stage_weight!r}")
        self.f = 0.5 if entropy == "code" else 1.0
        self.bottleneck = space.block == "k1kxk1"
        self.force_projection = getattr(space, "shortcut", "auto") == "conv"
        self.deepmad_rule = getattr(space, "bottleneck_rule", "ratio") == "deepmad"  # b >= smart_round(out / 10)
        self.se = space.se
        self.head = space.head_channels  # a fixed 1x1 head conv's width (0: none)
        self.grid = bool(space.bottleneck_grid)  # inner widths on the ratio grid (:meth:`b_options`)
        self.max_layers = space.max_layers  # conv layers on the main path at most (0: no limit)
        self.madnas = space.score == "madnas"
        if self.madnas:  # the reference subtracts the depth penalty from its deepmad score only
            self.use_penalty = False
        if self.head and self.latency_model is not None:
            raise SpecError(f"latency: space {space.name!r} has a head conv, which the CNN latency predictor has no unit for")
        self.n = len(space.strides)
        self.strides = tuple(space.strides)
        self.m = space.channel_multiple
        self.cin0 = space.in_channels
        self.ks = space.stem_kernel
        self.r0 = conv_out(self.resolution, space.stem_stride)
        r_in, r_out, r = [], [], self.r0
        for s in self.strides:
            r_in.append(r)
            r = conv_out(r, s)
            r_out.append(r)
        self.r_in, self.r_out = tuple(r_in), tuple(r_out)
        self.ends = stage_ends(self.strides)
        self.stage_of = [0] * self.n
        for s, end in enumerate(self.ends):
            start = self.ends[s - 1] + 1 if s else 0
            for i in range(start, end + 1):
                self.stage_of[i] = s
        # the madnas score weighs the last stage only (the reference config's multi_block_ratio [0, 0, 0, 0, 1])
        self.alpha = [0.0 if self.madnas else 1.0] * (len(self.ends) - 1) + [last]
        self.count_head = space.budget_counts == "model"
        # a bound on the exact MACs for the relaxation's MACs row: the MACs budget and, where every strided
        # side is even (so the reference's real sides are the exact ones) and the budget counts the classifier
        # (whose MACs the relaxation's FLOPs row leaves out), a FLOPs budget too, since the conv MACs are part
        # of the reference FLOPs. Otherwise the FLOPs row (:meth:`flops`' terms) bounds every MACs term and
        # more, and a MACs row under the FLOPs budget would only add its 21 exponential cones (R50) to every
        # relaxation
        sides_exact = self.resolution % space.stem_stride == 0 and all(r % s == 0 for r, s in zip(self.r_in, self.strides))
        limits = [v for v in (budget.macs, budget.flops if sides_exact and self.count_head else None) if v is not None]
        self.macs_limit = min(limits) if limits else None
        self.num_classes = space.num_classes
        self._b_ranges: dict[int, tuple[int, int]] = {}
        self._blocks: dict[tuple[int, ...], tuple[int, int, int, float, int]] = {}
        self._valid_blocks: dict[tuple[int, ...], bool] = {}
        self._b_options: dict[int, tuple[int, ...]] = {}

    # ----------------------------------------------------------------- designs
    def stage_side(self, s: int) -> int:
        end = self.ends[s]
        return self.r0 if end < 0 else self.r_out[end]

    def stage_width(self, s: int, d: Design) -> int:
        """Channels of stage ``s``'s output (the head conv's in the last stage when the space has one)."""
        end = self.ends[s]
        if s == len(self.ends) - 1 and self.head:
            return self.head
        return d.c0 if end < 0 else d.c[end]

    def b_options(self, c: int) -> tuple[int, ...]:
        """The inner widths allowed at output width ``c``, sorted: the grid's ``smart_round(r c)`` in a space
        with a ratio grid, else every multiple of the channel multiple in :meth:`b_range`."""
        cached = self._b_options.get(c)
        if cached is None:
            if self.grid:
                cached = self.space.inner_widths(c)
            else:
                lo, hi = self.b_range(c)
                cached = tuple(range(lo, hi + 1, self.m))
            self._b_options[c] = cached
        return cached

    def snap_b(self, c: int, b: float, direction: int = 0) -> int:
        """The allowed inner width at output width ``c`` nearest ``b`` (``direction`` -1 / +1: the nearest at or
        below / at or above, else the end of the range)."""
        opts = self.b_options(c) if c > 0 else (self.m,)
        if direction < 0:
            below = [x for x in opts if x <= b + 1e-9]
            return below[-1] if below else opts[0]
        if direction > 0:
            above = [x for x in opts if x >= b - 1e-9]
            return above[0] if above else opts[-1]
        return min(opts, key=lambda x: (abs(x - b), x))

    def b_range(self, c: int) -> tuple[int, int]:
        """Least and largest inner widths for output width ``c`` (multiples of the channel multiple; in a space
        with a ratio grid, the ends of :meth:`b_options`)."""
        cached = self._b_ranges.get(c)
        if cached is None and self.grid:
            opts = self.b_options(c)
            cached = self._b_ranges[c] = (opts[0], opts[-1])
        if cached is None:
            lo_r, hi_r = self.space.bottleneck_ratio
            m = self.m
            lo = max(m, math.ceil(lo_r * c / m - 1e-9) * m)
            if self.deepmad_rule:
                lo = max(lo, deepmad_smart_round(c / 10))
            hi = max(lo, math.floor(hi_r * c / m + 1e-9) * m)
            cached = self._b_ranges[c] = (lo, hi)
        return cached

    def is_valid(self, d: Design) -> bool:
        sp, m = self.space, self.m
        if not (sp.stem_widths[0] <= d.c0 <= sp.stem_widths[1]) or d.c0 % m:
            return False
        prev = d.c0
        valid = self._valid_blocks
        for i in range(self.n):
            key = (i, prev, d.c[i], d.b[i], d.k[i], d.L[i])
            ok = valid.get(key)
            if ok is None:
                if len(valid) > 200_000:
                    valid.clear()
                ok = valid[key] = self._block_valid(*key)
            if not ok:
                return False
            prev = d.c[i]
        return not self.max_layers or self.layers(d.L) <= self.max_layers

    def _block_valid(self, i: int, prev: int, c: int, b: int, k: int, L: int) -> bool:
        """Whether superblock ``i`` may have output ``c``, inner ``b``, kernel ``k`` and depth ``L`` after width
        ``prev``: :meth:`is_valid` per superblock, kept per argument tuple (the local searches test thousands of
        neighbours that differ in one or two superblocks)."""
        sp, m = self.space, self.m
        if c % m or b % m or not (sp.widths[0] <= c <= sp.widths[1]):
            return False
        if c < prev or c > sp.max_width_ratio * prev:
            return False
        lo, hi = self.b_range(c)
        if not (lo <= b <= hi) or k not in sp.kernels or (self.grid and b not in self.b_options(c)):
            return False
        return sp.depths[0] <= L <= (sp.first_depth_max if i == 0 else sp.depths[1])

    def layers(self, depths: tuple[int, ...]) -> int:
        """Conv layers on the main path: the stem, 3 per block, the head conv (the reference's ``layers``)."""
        return 1 + 3 * sum(depths) + (1 if self.head else 0)

    def to_spec(self, d: Design, *, name: str = "") -> CNNSpec:
        stages, prev = [], d.c0
        for i in range(self.n):
            stages.append(StageSpec(self.space.block, prev, d.c[i], d.b[i], d.k[i], self.strides[i], d.L[i], self.se,
                                    shortcut=self.space.shortcut))
            prev = d.c[i]
        stem = StemSpec(d.c0, self.cin0, self.ks, self.space.stem_stride)
        return CNNSpec(stem, tuple(stages), self.resolution, self.num_classes, name, head_channels=self.head)

    def from_spec(self, spec: CNNSpec) -> Design:
        st = spec.stages
        if len(st) != self.n or any(s.block != self.space.block for s in st) or getattr(spec.stem, "pool", False):
            raise SpecError(f"spec: does not follow the template of space {self.space.name!r}")
        wanted = self.space.shortcut
        if any(s.shortcut != wanted for s in st):  # evaluate()'s closed form has the space's shortcuts only
            raise SpecError(f"spec: every stage of space {self.space.name!r} has shortcut={wanted!r}")
        if spec.head_channels != self.head:
            raise SpecError(f"spec: space {self.space.name!r} has head_channels={self.head}, got {spec.head_channels}")
        return Design(spec.stem.out_channels, tuple(s.out_channels for s in st), tuple(s.bottleneck for s in st),
                      tuple(s.kernel for s in st), tuple(s.depth for s in st))

    def _block(self, i: int, cin: int, out: int, b: int, k: int, L: int) -> tuple[int, int, int, float, int]:
        """Superblock ``i``'s MACs, params, peak activation memory (elements), log-sum of layer widths and FLOPs
        (the numerator of :meth:`_block_flops`), for
        :meth:`evaluate`; kept per argument tuple, since the heuristics evaluate thousands of designs that differ
        in one or two superblocks (R50: an eighth of a solve's CPU went to evaluations)."""
        key = (i, cin, out, b, k, L)
        hit = self._blocks.get(key)
        if hit is not None:
            return hit
        log = math.log
        ri, ro, s = self.r_in[i], self.r_out[i], self.strides[i]
        macs_, params_, mem_ = 0, 0, 0
        k2 = k * k
        ri2, ro2 = ri * ri, ro * ro
        rest = L - 1
        if self.bottleneck:
            sc = s != 1 or cin != out or self.force_projection
            macs_ += ri2 * cin * b + ro2 * (k2 * b * b + b * out) + (ro2 * cin * out if sc else 0)
            params_ += cin * b + 4 * b + k2 * b * b + b * out + 2 * out + ((cin * out + 2 * out) if sc else 0)
            macs_ += rest * ro2 * (2 * out * b + k2 * b * b)
            params_ += rest * (2 * out * b + 4 * b + k2 * b * b + 2 * out)
            held = cin * ri2
            mem_ = max(mem_, cin * ri2 + b * ri2, b * ri2 + b * ro2 + held, b * ro2 + out * ro2 + held,
                      (cin * ri2 + 2 * out * ro2) if sc else 0)
            if rest:
                mem_ = max(mem_, out * ro2 + b * ro2, 2 * b * ro2 + out * ro2, b * ro2 + 2 * out * ro2)
            log_ = log(cin) + log(b * k2) + log(b) + rest * (log(out) + log(b * k2) + log(b))
        else:
            rd = se_channels(b) if self.se else 0
            se_macs = 2 * b * rd
            se_params = 2 * b * rd + rd + b if self.se else 0
            macs_ += ri2 * cin * b + ro2 * k2 * b + ro2 * b * out + se_macs
            params_ += cin * b + 4 * b + k2 * b + b * out + 2 * out + se_params
            macs_ += rest * (ro2 * out * b + ro2 * k2 * b + ro2 * b * out + se_macs)
            params_ += rest * (2 * out * b + 4 * b + k2 * b + 2 * out + se_params)
            held = cin * ri2 if (cin == out and (s == 1 or self.space.shortcut == "pool")) else 0
            mem_ = max(mem_, cin * ri2 + b * ri2, b * ri2 + b * ro2 + held, b * ro2 + out * ro2 + held,
                      (b + rd + held + b * ro2) if self.se else 0)
            if rest:
                held = out * ro2
                mem_ = max(mem_, out * ro2 + b * ro2, 2 * b * ro2 + held, b * ro2 + out * ro2 + held,
                          (b + rd + held + b * ro2) if self.se else 0)
            log_ = log(cin) + log(k2) + log(b) + rest * (log(out) + log(k2) + log(b))
        if len(self._blocks) > 200_000:
            self._blocks.clear()
        hit = self._blocks[key] = (macs_, params_, mem_, log_, self._block_flops(i, cin, out, b, k, L))
        return hit

    # -------------------------------------------------------------- evaluation
    def evaluate(self, d: Design) -> Evaluation:
        """Exact costs, score and rho of a design, in closed form (equal to the cost model)."""
        ks2 = self.ks * self.ks
        r0 = self.r0
        macs = r0 * r0 * self.cin0 * d.c0 * ks2
        params = self.cin0 * d.c0 * ks2 + 2 * d.c0
        mem = self.cin0 * self.resolution**2 + d.c0 * r0 * r0
        log = math.log
        logsum = log(self.cin0 * ks2)
        nl = 1
        cum_log, cum_n = [0.0] * self.n, [0] * self.n
        prev = d.c0
        flops = 0
        for i in range(self.n):
            L = d.L[i]
            block_macs, block_params, block_mem, block_log, block_flops = self._block(i, prev, d.c[i], d.b[i], d.k[i], L)
            flops += block_flops
            macs += block_macs
            params += block_params
            mem = max(mem, block_mem)
            logsum += block_log
            nl += 3 * L
            cum_log[i], cum_n[i] = logsum, nl
            prev = d.c[i]
        if self.head:  # the 1x1 head conv, in the last stage
            ro2, h = self.r_out[-1] ** 2, self.head
            macs += ro2 * prev * h
            params += prev * h + 2 * h
            mem = max(mem, prev * ro2 + h * ro2)
            logsum += log(prev)
            nl += 1
            cum_log[-1], cum_n[-1] = logsum, nl
        if self.count_head:
            features = self.stage_width(len(self.ends) - 1, d)
            macs += features * self.num_classes
            params += features * self.num_classes + self.num_classes
        f = self.f
        stem_log = log(self.cin0 * ks2)
        entropy, rho = 0.0, 0.0
        for s, end in enumerate(self.ends):
            if end < 0:
                side, lg, cnt = self.r0, stem_log, 1
            else:
                side, lg, cnt = self.r_out[end], cum_log[end], cum_n[end]
            width = self.stage_width(s, d)
            if self.madnas:
                entropy += self.alpha[s] * (f * lg + log(width))
            else:
                entropy += self.alpha[s] * (log(width) + 2 * log(side)) * f * lg
            rho = max(rho, cnt / math.exp(lg / cnt))
        penalty = depth_penalty(d.L, skip=self.space.penalty_skip, scale=self.penalty_weight) if self.use_penalty else 0.0
        memory = 4 * mem
        b = self.budget
        latency = self.latency(d) if self.latency_model is not None else 0.0
        flops = self._flops_total(flops, d.c0, d.c[-1]) if b.flops is not None else 0
        violation = max(0.0, rho / self.rho0 - 1.0)
        for value, limit in ((macs, b.macs), (params, b.params), (memory, b.memory), (latency, b.latency_ms),
                             (flops, b.flops)):
            if limit is not None:
                violation += max(0.0, value / limit - 1.0)
        feasible = violation <= 1e-12 and rho <= self.rho0 * (1 + 1e-12)
        return Evaluation(macs, params, memory, entropy, penalty, entropy - penalty, rho, feasible, violation, latency, flops)

    def flops(self, d: Design) -> int:
        """The backbone's FLOPs in the DeepMAD reference code's count, in closed form per superblock; equals
        :func:`archsearch.cost.cnn.deepmad_flops` of :meth:`to_spec` (the reference scales every term by the
        real side ``resolution / total stride``, so this does too, exactly: every squared side is an integer
        numerator over one common denominator, :attr:`_flops_sides`, and the sum is rounded once)."""
        total, prev = 0, d.c0
        for i in range(self.n):
            total += self._block_flops(i, prev, d.c[i], d.b[i], d.k[i], d.L[i])
            prev = d.c[i]
        return self._flops_total(total, d.c0, prev)

    def _flops_total(self, total: int, c0: int, last: int) -> int:
        """The FLOPs of a design whose superblocks add up to ``total`` (numerator over the common denominator
        of :attr:`_flops_sides`), with the stem's ``c0`` and the head on the last width ``last``; rounded once,
        half to even as ``round`` rounds a fraction."""
        (stem2, *_, (_, last2)), den = self._flops_sides
        total += (self.cin0 * self.ks * self.ks + 3) * c0 * stem2
        if self.head:
            total += (last + 3) * self.head * last2
        q, r = divmod(total, den)
        return q + (1 if 2 * r > den or (2 * r == den and q % 2) else 0)

    def _block_flops(self, i: int, c: int, out: int, b: int, k: int, L: int) -> int:
        """Superblock ``i``'s FLOPs in the reference's count (:meth:`flops`), as a numerator over the common
        denominator of :attr:`_flops_sides`."""
        (_, *sides), _ = self._flops_sides
        k2 = k * k
        s = self.strides[i]
        ri2, ro2 = sides[i]
        if self.bottleneck:
            kxk = b * b * k2 + 3 * b
            total = (c * b + 3 * b) * ri2 + kxk * ro2 + (b * out + 3 * out) * ro2 + (c * ri2 if s == 2 else 0)
            if s != 1 or c != out or self.force_projection:
                total += (c * out + 3 * out) * ro2
        else:
            kxk = b * k2 + 3 * b
            total = (c * b + 3 * b) * ri2 + kxk * ro2 + (b * out + 3 * out) * ro2 + (c * ri2 if s == 2 and c == out else 0)
        return total + (L - 1) * ((out * b + 3 * b) + kxk + (b * out + 3 * out)) * ro2

    @functools.cached_property
    def _flops_sides(self) -> tuple[tuple[Any, ...], int]:
        """The reference's squared real sides (``(resolution / total stride)^2``) as integer numerators over
        one common denominator: ``((stem, (in_1, out_1), ...), denominator)``."""
        side = Fraction(self.resolution, self.space.stem_stride)
        squares = [side * side]
        for s in self.strides:
            squares.append((side / s) ** 2)
            side = side / s
        den = math.lcm(*(q.denominator for q in squares))
        nums = [q.numerator * (den // q.denominator) for q in squares]
        return (nums[0], *((nums[i], nums[i + 1]) for i in range(self.n))), den

    def latency(self, d: Design) -> float:
        """Predicted whole-model latency (ms) of a design; equals
        :func:`archsearch.cost.latency.predict_latency` of :meth:`to_spec`."""
        from archsearch.cost.latency import block_features, head_features, stem_features

        model = self.latency_model
        if model is None:
            raise SpecError(f"latency: space {self.space.name} has no latency model loaded")
        total = model.unit_ms("stem", stem_features(c_in=self.cin0, c_out=d.c0, kernel=self.ks, stride=self.space.stem_stride,
                                                    r_in=self.resolution, channel_block=model.channel_block,
                                                    kernel_exponent=model.kernel_exponent))
        prev, block = d.c0, self.space.block
        for i in range(self.n):
            kw = dict(bottleneck=d.b[i], kernel=d.k[i], se=self.se, channel_block=model.channel_block,
                      kernel_exponent=model.kernel_exponent)
            total += model.unit_ms(block, block_features(block, c_in=prev, c_out=d.c[i], stride=self.strides[i], r_in=self.r_in[i],
                                                         projection=self.force_projection, **kw))
            if d.L[i] > 1:
                total += (d.L[i] - 1) * model.unit_ms(block, block_features(block, c_in=d.c[i], c_out=d.c[i], stride=1,
                                                                            r_in=self.r_out[i], **kw))
            prev = d.c[i]
        if self.num_classes:
            total += model.unit_ms("head", head_features(channels=d.c[-1], side=self.r_out[-1], num_classes=self.num_classes))
        return total
