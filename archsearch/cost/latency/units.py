"""A network as a sequence of typed units, each a vector of features; the model's latency is their sum.

Every unit's predicted latency is a non-negative combination of its features (:data:`FEATURES`)::

    t_unit = a + b * 1x1 MACs + c * dense kxk MACs + d * depthwise MACs + e * activations + f * weights

with MACs, activation elements (read and written by its layers) and weights in millions, and one
coefficient vector per unit type (:data:`UNIT_TYPES`), so a whole model's prediction
``scale * sum_units a_type . f_unit`` is linear in its features summed per type
(:func:`summed_features`). :func:`model_units` cuts a spec of any family the predictor covers
(:data:`LATENCY_FAMILIES`) into its units, in execution order.
"""

from __future__ import annotations

from typing import Iterator, Sequence

from archsearch.cost.latency.cnn import cnn_units
from archsearch.cost.latency.mci import mci_units
from archsearch.cost.latency.stvit import stvit_units
from archsearch.cost.latency.tinyvit import tinyvit_units
from archsearch.cost.latency.vit import vit_units
from archsearch.errors import SpecError
from archsearch.space.cnn import CNNSpec
from archsearch.space.mci import MCiSpec
from archsearch.space.stvit import STViTSpec
from archsearch.space.tinyvit import TinyViTSpec
from archsearch.space.vit import ViTSpec

__all__ = ["FEATURES", "LATENCY_FAMILIES", "STATISTICS", "UNIT_TYPES", "model_units", "summed_features"]

FEATURES = ("const", "pw_mmacs", "kxk_mmacs", "dw_mmacs", "mactivations", "mweights")
UNIT_TYPES = ("stem", "k1kxk1", "k1dwk1", "head", "patch_embed", "vit_block", "vit_head", "st_cross",
              "mci_stem", "mci_down", "mci_repmixer", "mci_attention", "mci_final",
              "tinyvit_stem", "tinyvit_mbconv", "tinyvit_merge", "tinyvit_block", "tinyvit_head")
LATENCY_FAMILIES = ("cnn", "vit", "stvit", "mci", "tinyvit")  # families whose specs the predictor covers
STATISTICS = ("median", "p25", "min")  # what a timing keeps of its calls (see archsearch.train.timing)


def model_units(spec: object, channel_block: int = 1, kernel_exponent: float = 0.0) -> Iterator[tuple[str, tuple[float, ...]]]:
    """The units of a CNN, ViT, STViT, MCi or TinyViT spec (``channel_block``, ``kernel_exponent``: how
    CNN conv MACs are counted, :func:`block_features`; the other families ignore them)."""
    if isinstance(spec, CNNSpec):
        return cnn_units(spec, channel_block, kernel_exponent)
    if isinstance(spec, ViTSpec):
        return vit_units(spec)
    if isinstance(spec, STViTSpec):
        return stvit_units(spec)
    if isinstance(spec, MCiSpec):
        return mci_units(spec)
    if isinstance(spec, TinyViTSpec):
        return tinyvit_units(spec)
    raise SpecError(f"spec: the latency predictor covers the {list(LATENCY_FAMILIES)} families, "
                    f"not {getattr(spec, 'family', type(spec).__name__)!r}")


def summed_features(units: Sequence[tuple[str, Sequence[float]]]) -> dict[str, tuple[float, ...]]:
    """A whole model's features summed per unit type (its predicted latency is linear in them)."""
    out: dict[str, list[float]] = {}
    for unit, feats in units:
        acc = out.setdefault(unit, [0.0] * len(FEATURES))
        for i, v in enumerate(feats):
            acc[i] += v
    return {u: tuple(v) for u, v in out.items()}
