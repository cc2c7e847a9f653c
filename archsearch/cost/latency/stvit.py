"""The units of an STViT: a ViT's units plus the cross-attention layers (``st_cross``).

A cross-attention layer lets ``q`` queries attend to ``k`` keys/values: the semantic-token layers
(the semantic tokens over the image tokens) and the recovery block (the image tokens over the
semantic ones). Its 1x1 MACs are the Q/K/V and output projections and the MLP, its kxk MACs the
products ``Q K^T`` and ``A V`` (``2 q k d``).
"""

from __future__ import annotations

from typing import Iterator

from archsearch.cost.latency.vit import patch_embed_features, vit_block_features, vit_head_features
from archsearch.space.stvit import STViTSpec

__all__ = ["cross_features", "stvit_units"]


def cross_features(*, embed_dim: int, mlp_dim: int, queries: int, keys: int) -> tuple[float, ...]:
    """An STViT cross-attention layer (q queries over k keys/values: a semantic-token layer or the
    recovery block): LayerNorms, Q/K/V and output projections, ``Q K^T`` and ``A V``, the MLP."""
    d, q, k, m = embed_dim, queries, keys, mlp_dim
    linear = q * d * d + 2 * k * d * d + q * d * d + 2 * q * d * m
    mixing = 2 * q * k * d
    acts = (2 * q * d + 2 * k * d) + (q * d + k * d + 3 * k * d + q * d) + 4 * q * k + 2 * q * d + 2 * q * d \
        + (q * d + q * m) + 2 * q * m + (q * m + q * d) + 2 * q * d
    weights = 6 * d + (d + 1) * d + (d + 1) * 2 * d + (d + 1) * d + (d + 1) * m + (m + 1) * d
    return (1.0, linear / 1e6, mixing / 1e6, 0.0, acts / 1e6, weights / 1e6)


def stvit_units(spec: STViTSpec) -> Iterator[tuple[str, tuple[float, ...]]]:
    """``(unit type, features)`` of every unit of an STViT in execution order: the patch embedding, the
    image-token layers, the semantic-token layers (M + c queries over N + c image tokens; the pooling
    that forms them is not a product and is left to the layers' constants), the layers on the
    semantic tokens, the recovery block, the head."""
    d, h, hd, m = spec.embed_dim, spec.num_heads, spec.head_dim, spec.mlp_dim
    n_img, n_sem = spec.image_tokens, spec.semantic_tokens
    yield "patch_embed", patch_embed_features(in_channels=spec.in_channels, embed_dim=d, patch_size=spec.patch_size,
                                              resolution=spec.resolution, class_token=spec.class_token)
    block = dict(embed_dim=d, heads=h, qk_dim=hd, v_dim=hd, mlp_dim=m)
    for _ in range(spec.semantic_layer):
        yield "vit_block", vit_block_features(**block, tokens=n_img)
    for _ in range(spec.semantic_layers):
        yield "st_cross", cross_features(embed_dim=d, mlp_dim=m, queries=n_sem, keys=n_img)
    for _ in range(spec.tail_layers):
        yield "vit_block", vit_block_features(**block, tokens=n_sem)
    final = n_sem
    if spec.recovery:
        yield "st_cross", cross_features(embed_dim=d, mlp_dim=m, queries=spec.num_patches, keys=n_sem)
        final = n_img
    yield "vit_head", vit_head_features(embed_dim=d, tokens=final, num_classes=spec.num_classes)
