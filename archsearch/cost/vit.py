"""Exact costs of :class:`~archsearch.space.vit.ViTSpec` (no torch).

MACs count every matrix product at batch 1, as ``FlopCounterMode`` total / 2 does on the built
module with unfused attention: the patch-embedding convolution, per block the Q/K/V projections,
``Q K^T`` and ``A V`` (``H N^2`` times the query/key and value widths), the output projection and
the two MLP layers, and the classifier. Normalisation, softmax, GELU, bias additions and the token
average are not products and are not counted (the NViT/STViT convention of PAPERS.md).
"""

from __future__ import annotations

from archsearch.space.vit import ViTBlockSpec, ViTSpec

__all__ = ["vit_params", "vit_macs", "vit_activation_memory", "vit_block_params", "vit_block_macs"]

BYTES = 4  # float32


def vit_block_params(block: ViTBlockSpec, embed_dim: int) -> int:
    """Two LayerNorms, biased Q/K/V and output projections, a biased two-layer MLP."""
    d, h = embed_dim, block.heads
    qkv = h * (2 * block.qk_dim + block.v_dim)
    return 4 * d + (d + 1) * qkv + (h * block.v_dim + 1) * d + (d + 1) * block.mlp_dim + (block.mlp_dim + 1) * d


def vit_block_macs(block: ViTBlockSpec, embed_dim: int, tokens: int) -> int:
    """Projections ``N d (H (2 qk + v)) + N H v d``, attention ``H N^2 (qk + v)``, MLP ``2 N d m``."""
    d, h, n = embed_dim, block.heads, tokens
    proj = n * d * h * (2 * block.qk_dim + block.v_dim) + n * h * block.v_dim * d
    attn = h * n * n * (block.qk_dim + block.v_dim)
    return proj + attn + 2 * n * d * block.mlp_dim


def vit_params(spec: ViTSpec, *, with_head: bool = False) -> int:
    """Exact parameters: patch embedding, class token, position embedding, blocks, final norm (, head)."""
    d = spec.embed_dim
    total = spec.in_channels * spec.patch_size**2 * d + d  # patch embedding conv with bias
    total += d * int(spec.class_token) + spec.num_tokens * d  # class token, position embedding
    total += sum(vit_block_params(b, d) for b in spec.blocks)
    total += 2 * d  # final LayerNorm
    if with_head and spec.num_classes:
        total += (d + 1) * spec.num_classes
    return total


def vit_macs(spec: ViTSpec, *, with_head: bool = False) -> int:
    """Exact MACs at batch 1 (see the module docstring for what counts)."""
    d, n = spec.embed_dim, spec.num_tokens
    total = spec.num_patches * spec.in_channels * spec.patch_size**2 * d
    total += sum(vit_block_macs(b, d, n) for b in spec.blocks)
    if with_head and spec.num_classes:
        total += d * spec.num_classes
    return total


def vit_activation_memory(spec: ViTSpec) -> int:
    """Peak activation bytes at batch 1 (float32), a layer-by-layer estimate.

    At each step the live tensors are the residual stream (``N d``) and the step's input and output:
    the Q/K/V projections (``N H (2 qk + v)``), the attention map (``H N^2``, held with V), the
    attention output, and the MLP hidden layer (``N m``). The image itself counts at the stem.
    """
    d, n = spec.embed_dim, spec.num_tokens
    peak = spec.in_channels * spec.resolution**2 + spec.num_patches * d
    for b in spec.blocks:
        qkv = n * b.heads * (2 * b.qk_dim + b.v_dim)
        attn = b.heads * n * n
        peak = max(peak,
                   n * d + n * d + qkv,  # residual, normed input, q k v
                   n * d + qkv + attn,  # q k v and the attention map
                   n * d + n * b.heads * b.v_dim + attn,  # A V
                   n * d + n * d + n * b.mlp_dim)  # residual, normed input, MLP hidden
    return BYTES * peak
