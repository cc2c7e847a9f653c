"""The units of an MCi (FastViT): the stem, each stage's downsampling, every block, the final layers.

Units are the exact cost model's operations (:func:`archsearch.cost.mci.mci_ops`) grouped by the
module that runs them: the stem, each stage's downsampling and positional encoding, every RepMixer
or attention block, and the final conv with its SE and the projection head. A unit's features sum
its operations' MACs by kind (1x1 and linear; depthwise and grouped; dense kxk and the attention
core), their live elements and their parameters.
"""

from __future__ import annotations

from typing import Any, Iterator

from archsearch.space.mci import MCiSpec

__all__ = ["mci_unit_keys", "mci_units"]


#: MCi operation roles (:func:`archsearch.cost.mci.mci_ops`) by feature: 1x1 convolutions and linear layers,
#: depthwise / grouped convolutions, and dense kxk convolutions with the attention core (token mixing).
_MCI_PW = ("stem.2", "down.pw", "down.se", "ffn.fc1", "ffn.fc2", "attn.qkv", "attn.proj", "final.se")
_MCI_DW = ("stem.1", "down.lkc", "cpe", "repmixer", "ffn.dw", "final")
_MCI_KXK = ("stem.0", "attn.core")


def _mci_key(spec: MCiSpec, op: Any) -> tuple[str, int, int]:
    if op.stage < 0:
        return ("mci_stem", -1, -1) if op.role.startswith("stem") else ("mci_final", -1, -1)
    if op.block < 0:
        return ("mci_down", op.stage, -1)
    return ("mci_attention" if spec.token_mixers[op.stage] == "attention" else "mci_repmixer", op.stage, op.block)


def mci_unit_keys(spec: MCiSpec) -> list[tuple[str, int, int]]:
    """``(unit type, stage, block)`` of every unit of an MCi spec in execution order (stage -1: the stem;
    block -1: the stage's downsampling and positional encoding; the last unit, the final conv and head)."""
    from archsearch.cost.mci import mci_ops

    keys: list[tuple[str, int, int]] = []
    for op in mci_ops(spec):
        key = _mci_key(spec, op)
        if not keys or keys[-1] != key:
            keys.append(key)
    return keys


def mci_units(spec: MCiSpec) -> Iterator[tuple[str, tuple[float, ...]]]:
    """``(unit type, features)`` of every unit of an MCi (FastViT) spec: the stem, each stage's
    downsampling and positional encoding, every RepMixer or attention block, the final conv with its SE
    and the projection head. Features come from the exact cost model's operations
    (:func:`archsearch.cost.mci.mci_ops`): their MACs by kind, their live elements and parameters."""
    from archsearch.cost.mci import mci_head_macs, mci_head_params, mci_ops

    acc: dict[tuple[str, int, int], list[float]] = {}
    for op in mci_ops(spec):
        f = acc.setdefault(_mci_key(spec, op), [1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        slot = 1 if op.role in _MCI_PW else 3 if op.role in _MCI_DW else 2 if op.role in _MCI_KXK else None
        if slot is not None:
            f[slot] += op.macs / 1e6
        f[4] += op.memory / 1e6
        f[5] += op.params / 1e6
    final = acc[("mci_final", -1, -1)]
    final[1] += mci_head_macs(spec) / 1e6
    final[4] += (spec.num_features + spec.num_classes) / 1e6
    final[5] += mci_head_params(spec) / 1e6
    for key in mci_unit_keys(spec):
        yield key[0], tuple(acc[key])
