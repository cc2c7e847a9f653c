"""The units of a ViT (the NViT/ReViT spaces): the patch embedding, every transformer block, the head.

A linear layer over tokens is a 1x1 convolution, so a block's "1x1 MACs" are its linear layers'
and its "kxk MACs" the token-mixing products ``Q K^T`` and ``A V``; the patch embedding is a
``patch x patch`` convolution. A block's features are the sum of an attention half (in the heads
and the query/key/value widths) and an MLP half (in the MLP width), so its predicted latency is
separable in them and linear in every per-block choice; the block's formula takes any dims and
token count.
"""

from __future__ import annotations

from typing import Iterator

from archsearch.space.vit import ViTSpec

__all__ = ["patch_embed_features", "vit_attention_features", "vit_block_features", "vit_head_features", "vit_mlp_features",
           "vit_units"]


def vit_attention_features(*, embed_dim: int, heads: int, qk_dim: int, v_dim: int, tokens: int) -> tuple[float, ...]:
    """The attention half of a ViT block (its LayerNorm, Q/K/V, ``Q K^T``, softmax, ``A V``, projection,
    residual sum); constant term 0 (the block's constant is in :func:`vit_mlp_features`)."""
    d, n, h = embed_dim, tokens, heads
    qkv = h * (2 * qk_dim + v_dim)
    linear = n * d * qkv + n * h * v_dim * d
    mixing = h * n * n * (qk_dim + v_dim)
    # LayerNorm in/out, qkv in/out, the attention map written, read by softmax, written, read by A V,
    # A V out, projection in/out, residual sum
    acts = 2 * n * d + (n * d + n * qkv) + 4 * h * n * n + n * h * v_dim + (n * h * v_dim + n * d) + 2 * n * d
    weights = (d + 1) * qkv + (h * v_dim + 1) * d + 2 * d
    return (0.0, linear / 1e6, mixing / 1e6, 0.0, acts / 1e6, weights / 1e6)


def vit_mlp_features(*, embed_dim: int, mlp_dim: int, tokens: int) -> tuple[float, ...]:
    """The MLP half of a ViT block (LayerNorm, two linear layers, GELU, residual sum), with the
    block's constant term."""
    d, n, m = embed_dim, tokens, mlp_dim
    acts = 2 * n * d + (n * d + n * m) + 2 * n * m + (n * m + n * d) + 2 * n * d
    weights = (d + 1) * m + (m + 1) * d + 2 * d
    return (1.0, 2 * n * d * m / 1e6, 0.0, 0.0, acts / 1e6, weights / 1e6)


def vit_block_features(*, embed_dim: int, heads: int, qk_dim: int, v_dim: int, mlp_dim: int, tokens: int) -> tuple[float, ...]:
    """Features of one ViT block: the sum of its attention and MLP halves."""
    att = vit_attention_features(embed_dim=embed_dim, heads=heads, qk_dim=qk_dim, v_dim=v_dim, tokens=tokens)
    mlp = vit_mlp_features(embed_dim=embed_dim, mlp_dim=mlp_dim, tokens=tokens)
    return tuple(a + b for a, b in zip(att, mlp))


def patch_embed_features(*, in_channels: int, embed_dim: int, patch_size: int, resolution: int,
                         class_token: bool = True) -> tuple[float, ...]:
    """The patch-embedding convolution, the class token and the position embedding sum."""
    patches = (resolution // patch_size) ** 2
    tokens = patches + int(class_token)
    macs = patches * in_channels * patch_size**2 * embed_dim
    acts = in_channels * resolution**2 + patches * embed_dim + 2 * tokens * embed_dim
    weights = in_channels * patch_size**2 * embed_dim + embed_dim * (1 + int(class_token)) + tokens * embed_dim
    return (1.0, 0.0, macs / 1e6, 0.0, acts / 1e6, weights / 1e6)


def vit_head_features(*, embed_dim: int, tokens: int, num_classes: int) -> tuple[float, ...]:
    """The final LayerNorm over every token and the linear classifier."""
    d = embed_dim
    return (1.0, d * num_classes / 1e6, 0.0, 0.0, (2 * tokens * d + d + num_classes) / 1e6,
            (2 * d + (d + 1) * num_classes * (num_classes > 0)) / 1e6)


def vit_units(spec: ViTSpec) -> Iterator[tuple[str, tuple[float, ...]]]:
    """``(unit type, features)`` of every unit of a ViT in execution order."""
    n, d = spec.num_tokens, spec.embed_dim
    yield "patch_embed", patch_embed_features(in_channels=spec.in_channels, embed_dim=d, patch_size=spec.patch_size,
                                              resolution=spec.resolution, class_token=spec.class_token)
    for b in spec.blocks:
        yield "vit_block", vit_block_features(embed_dim=d, heads=b.heads, qk_dim=b.qk_dim, v_dim=b.v_dim, mlp_dim=b.mlp_dim,
                                              tokens=n)
    yield "vit_head", vit_head_features(embed_dim=d, tokens=n, num_classes=spec.num_classes)
