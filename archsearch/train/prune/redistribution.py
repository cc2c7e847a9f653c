"""The redistribution profile: the kept dims per block of every structure, as data and as a plot.

NViT's redistribution analysis compares, block by block, the dims pruning kept with the dense
model's (EMB, shared by every block, repeated per block). :func:`profile` computes it from a spec;
:func:`redistribution_plot` draws it (matplotlib, imported when called).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from archsearch.space.vit import ViTSpec
from archsearch.train.prune.config import STRUCTURES

__all__ = ["profile", "redistribution_plot"]


def profile(spec: ViTSpec) -> dict[str, list[int]]:
    """Kept dims per block and structure (EMB repeated per block), the redistribution profile."""
    return {"embed": [spec.embed_dim] * spec.depth, "heads": [b.heads for b in spec.blocks],
            "qk": [b.qk_dim for b in spec.blocks], "v": [b.v_dim for b in spec.blocks],
            "mlp": [b.mlp_dim for b in spec.blocks]}


def redistribution_plot(dense: Mapping[str, Sequence[int]], pruned: Mapping[str, Sequence[int]], path: str | Path,
                        *, title: str = "") -> Path:
    """Draws the dims per block of every structure, dense (dashed) and pruned (solid), one panel each
    (the NViT paper's redistribution analysis); PNG or SVG by the file suffix."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    labels = {"embed": "EMB", "heads": "heads", "qk": "QK / head", "v": "V / head", "mlp": "MLP"}
    fig, axes = plt.subplots(1, 5, figsize=(16, 3.2), constrained_layout=True)
    for ax, s in zip(axes, STRUCTURES):
        blocks = range(1, len(pruned[s]) + 1)
        ax.plot(blocks, dense[s], "--", color="0.6", label="dense")
        ax.plot(blocks, pruned[s], "o-", label="pruned")
        ax.set_title(labels[s])
        ax.set_xlabel("block")
        ax.set_ylim(bottom=0)
    axes[0].legend()
    if title:
        fig.suptitle(title)
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out
