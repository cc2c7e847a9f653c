"""How the pruning phase runs: the structures NViT prunes, their groups, and :class:`PruneConfig`.

The structures (:data:`STRUCTURES`) are EMB (the embedding width, shared by every block) and, per
block, the heads, the query/key indices per head (head-aligned: index j of every kept head), the
value indices per head and the MLP units. Each layer of a structure is cut into contiguous groups
of the structure's size (:data:`DEFAULT_GROUPS`, NViT's: EMB 16, heads 2, QK 8, V 8, MLP 16; the
last group of a layer may be smaller), and a group's saliency term is divided by the structure's
normaliser ``c`` before squaring (:data:`DEFAULT_NORMALISERS`: EMB 12, heads 12, QK 2, V 2, MLP 1;
see :mod:`archsearch.train.prune.gated`). No torch here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

from archsearch.errors import SpecError

__all__ = ["DEFAULT_GROUPS", "DEFAULT_NORMALISERS", "STRUCTURES", "Criterion", "PruneConfig"]

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
