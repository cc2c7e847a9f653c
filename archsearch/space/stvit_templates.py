"""Built-in STViT spaces (Chang et al., "Making Vision Transformers Efficient from A Token
Sparsification View", CVPR 2023). Budgets count the whole model (ViT convention).

Each default budget is 42% of its DeiT's MACs (the paper's -58%). DeiT-T/S/B count 1,253,683,200 /
4,598,882,304 / 17,563,828,224 MACs at 224 px with the classifier (timm's ``deit_*_patch16_224``
under ``FlopCounterMode``, equal to :func:`archsearch.cost.vit_macs`; a test checks the numbers).
"""

from __future__ import annotations

from archsearch.space.budget import Budget
from archsearch.space.search_space import register_space
from archsearch.space.stvit import STViTSpace

DEIT_MACS = {"deit_tiny": 1_253_683_200, "deit_small": 4_598_882_304, "deit_base": 17_563_828_224}
BUDGET_SHARE = 0.42

for _name, _variant, _dims in (
    ("stvit", "deit_small", dict(embed_dim=384, num_heads=6)),
    ("stvit-tiny", "deit_tiny", dict(embed_dim=192, num_heads=3)),
    ("stvit-base", "deit_base", dict(embed_dim=768, num_heads=12)),
):
    register_space(STViTSpace(
        name=_name, budget=Budget(macs=round(BUDGET_SHARE * DEIT_MACS[_variant])), budget_counts="model", **_dims,
        description=f"STViT on {_variant.replace('deit_', 'DeiT-').replace('small', 'S').replace('tiny', 'T').replace('base', 'B')}: "
                    "pooling layer l, semantic tokens M, semantic-layer count at 42% of its MACs",
    ))
