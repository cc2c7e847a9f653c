"""Published reference models, with their papers' numbers, for comparison plots and tables.

Every figure is ImageNet-1k top-1 at 224 px, as the cited paper reports it. ``counts`` says what the
costs count: the DeepMAD papers give their budgets for the backbone (classifier excluded), DeiT and
TinyViT the whole model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["REFERENCES", "Reference", "reference_frame"]


class Reference(NamedTuple):
    """A published model: costs (MACs at batch 1, parameters), ImageNet top-1 and its source."""

    name: str
    families: tuple[str, ...]
    macs: float
    params: float
    top1: float
    counts: Literal["backbone", "model"]
    source: str


_DEEPMAD = "Shen et al., DeepMAD: Mathematical Architecture Design for Deep CNN, CVPR 2023 (budgets of the backbone)"
_DEIT = "Touvron et al., DeiT, ICML 2021, as reported in Yang et al., NViT (Global Vision Transformer Pruning with Hessian-Aware Saliency), CVPR 2023"
_TINYVIT = "Wu et al., TinyViT: Fast Pretraining Distillation for Small Vision Transformers, ECCV 2022 (without distillation)"

REFERENCES: tuple[Reference, ...] = (
    Reference("DeepMAD-R18", ("cnn",), 1.82e9, 11.69e6, 77.7, "backbone", _DEEPMAD),
    Reference("DeepMAD-R34", ("cnn",), 3.68e9, 21.80e6, 79.7, "backbone", _DEEPMAD),
    Reference("DeepMAD-R50", ("cnn",), 4.13e9, 25.55e6, 80.6, "backbone", _DEEPMAD),
    Reference("DeiT-T", ("vit", "stvit"), 1.2e9, 5.6e6, 74.50, "model", _DEIT),
    Reference("DeiT-S", ("vit", "stvit"), 4.6e9, 22e6, 81.20, "model", _DEIT),
    Reference("DeiT-B", ("vit", "stvit"), 17.6e9, 86e6, 83.36, "model", _DEIT),
    Reference("TinyViT-5M", ("tinyvit",), 1.3e9, 5.4e6, 79.1, "model", _TINYVIT),
    Reference("TinyViT-11M", ("tinyvit",), 2.0e9, 11e6, 81.5, "model", _TINYVIT),
    Reference("TinyViT-21M", ("tinyvit",), 4.3e9, 21e6, 83.1, "model", _TINYVIT),
)


def reference_frame(*, families: set[str] | None = None) -> "pd.DataFrame":
    """The published models relevant to ``families`` (all of them when None) as a DataFrame with
    columns ``name, families, macs, params, top1, counts, source``."""
    import pandas as pd

    rows = [r._asdict() | {"families": ", ".join(r.families)} for r in REFERENCES
            if families is None or set(r.families) & families]
    return pd.DataFrame(rows, columns=list(Reference._fields))
