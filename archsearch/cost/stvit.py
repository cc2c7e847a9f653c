"""Exact costs of :class:`~archsearch.space.stvit.STViTSpec` (no torch).

MACs count every matrix product at batch 1, as ``FlopCounterMode`` total / 2 does on the built
module with unfused attention (the convention of :mod:`archsearch.cost.vit`, whose block formulas
the image-token and semantic-only layers reuse): the patch-embedding convolution; per ordinary layer
on T tokens the Q/K/V projections, ``Q K^T``, ``A V``, the output projection and the MLP; per
cross-attention layer (semantic-token layer: M + c queries over N + c keys/values; recovery: N
queries over M + c keys/values) the Q projection of the queries, the K/V projections of the
keys/values, ``Q K^T`` and ``A V``, the output projection and MLP of the queries; the classifier.
Pooling, normalisation, softmax, GELU, biases and token averages are not products and cost nothing.

With C the width, N the patches and M the semantic tokens, and ignoring the class token, the patch
embedding, biases and head, a semantic-token layer costs ``2MC^2`` (Q, output) + ``2NC^2`` (K, V)
+ ``2MNC`` + ``8MC^2`` (MLP of ratio 4): the costing of PAPERS.md (Chang et al., CVPR 2023), which
:func:`paper_macs` evaluates for comparison.
"""

from __future__ import annotations

from archsearch.cost.vit import vit_block_macs, vit_block_params
from archsearch.space.stvit import STViTSpec
from archsearch.space.vit import ViTBlockSpec

__all__ = [
    "stvit_params", "stvit_macs", "stvit_activation_memory", "cross_layer_params", "cross_layer_macs", "paper_macs",
]

BYTES = 4  # float32


def _block(spec: STViTSpec) -> ViTBlockSpec:
    return ViTBlockSpec(spec.num_heads, spec.head_dim, spec.head_dim, spec.mlp_dim)


def cross_layer_params(embed_dim: int, mlp_dim: int) -> int:
    """A cross-attention layer: LayerNorms of the queries, the keys/values and the MLP input, biased
    Q, K/V and output projections, a biased two-layer MLP (an ordinary layer plus one LayerNorm)."""
    d = embed_dim
    return 6 * d + (d + 1) * d + (d + 1) * 2 * d + (d + 1) * d + (d + 1) * mlp_dim + (mlp_dim + 1) * d


def cross_layer_macs(embed_dim: int, mlp_dim: int, queries: int, keys: int) -> int:
    """``q d^2`` (Q) + ``2 k d^2`` (K, V) + ``2 q k d`` (``Q K^T``, ``A V``) + ``q d^2`` (output) + ``2 q d m`` (MLP)."""
    d, q, k = embed_dim, queries, keys
    return q * d * d + 2 * k * d * d + 2 * q * k * d + q * d * d + 2 * q * d * mlp_dim


def stvit_params(spec: STViTSpec, *, with_head: bool = False) -> int:
    """Exact parameters: patch embedding, class token, position embedding, layers, final norm (, head)."""
    d, block = spec.embed_dim, _block(spec)
    total = spec.in_channels * spec.patch_size**2 * d + d  # patch embedding conv with bias
    total += d * int(spec.class_token) + spec.image_tokens * d  # class token, position embedding
    total += (spec.semantic_layer + spec.tail_layers) * vit_block_params(block, d)
    total += (spec.semantic_layers + int(spec.recovery)) * cross_layer_params(d, spec.mlp_dim)
    total += 2 * d  # final LayerNorm
    if with_head and spec.num_classes:
        total += (d + 1) * spec.num_classes
    return total


def stvit_macs(spec: STViTSpec, *, with_head: bool = False) -> int:
    """Exact MACs at batch 1 (see the module docstring for what counts)."""
    d, block, m = spec.embed_dim, _block(spec), spec.mlp_dim
    total = spec.num_patches * spec.in_channels * spec.patch_size**2 * d
    total += spec.semantic_layer * vit_block_macs(block, d, spec.image_tokens)
    total += spec.semantic_layers * cross_layer_macs(d, m, spec.semantic_tokens, spec.image_tokens)
    total += spec.tail_layers * vit_block_macs(block, d, spec.semantic_tokens)
    if spec.recovery:
        total += cross_layer_macs(d, m, spec.num_patches, spec.semantic_tokens)
    if with_head and spec.num_classes:
        total += d * spec.num_classes
    return total


def paper_macs(*, embed_dim: int, tokens: int, layers: int = 12, semantic_layer: int | None = None,
               num_semantic: int = 0, semantic_layers: int = 0) -> int:
    """The layer costing of PAPERS.md (STViT, Chang et al., CVPR 2023), without the class token,
    patch embedding, biases or head.

    A full layer on N tokens costs ``4NC^2 + 2N^2C`` (attention) + ``8NC^2`` (MLP); a
    semantic-token layer ``2MC^2 + 2NC^2 + 2MNC + 8MC^2``. With ``semantic_layer=None`` all
    ``layers`` are full layers on ``tokens`` (the dense baseline).
    """
    c, n, mm = embed_dim, tokens, num_semantic

    def full(t: int) -> int:
        return 4 * t * c * c + 2 * t * t * c + 8 * t * c * c

    if semantic_layer is None:
        return layers * full(n)
    sem = 2 * mm * c * c + 2 * n * c * c + 2 * mm * n * c + 8 * mm * c * c
    tail = layers - semantic_layer - semantic_layers
    return semantic_layer * full(n) + semantic_layers * sem + tail * full(mm)


def stvit_activation_memory(spec: STViTSpec) -> int:
    """Peak activation bytes at batch 1 (float32), a layer-by-layer estimate.

    Ordinary layers on T tokens follow :func:`archsearch.cost.vit.vit_activation_memory`: the
    residual stream and the step's input and output (Q/K/V, the ``H T^2`` attention map, the MLP
    hidden layer). From the pooling on, the image tokens (``N + c`` by ``d``) stay live beside the
    semantic tokens: every semantic-token layer reads them, and with recovery they are held to the
    end. A cross-attention layer with q queries over k keys/values holds the queries' residual,
    the normed keys/values and K, V (``3 k d``), Q (``q d``), the ``H q k`` attention map, and the
    MLP hidden layer (``q m``). The image counts at the stem.
    """
    d, h, m = spec.embed_dim, spec.num_heads, spec.mlp_dim
    n_img, n_sem, n = spec.image_tokens, spec.semantic_tokens, spec.num_patches

    def ordinary(t: int, held: int) -> int:
        return held + max(2 * t * d + 3 * t * d,  # residual, normed input, q k v
                          t * d + 3 * t * d + h * t * t,  # q k v and the attention map
                          t * d + t * d + h * t * t,  # A V output beside the map
                          2 * t * d + t * m)  # residual, normed input, MLP hidden

    def cross(q: int, k: int, held: int) -> int:
        return held + max(2 * q * d + 3 * k * d + q * d,  # residual, normed queries, normed kv, K V, Q
                          q * d + 2 * k * d + q * d + h * q * k,  # K V, Q and the attention map
                          q * d + k * d + q * d + h * q * k,  # V, A V output beside the map
                          2 * q * d + q * m)  # residual, normed input, MLP hidden

    peak = spec.in_channels * spec.resolution**2 + spec.num_patches * d
    if spec.semantic_layer:
        peak = max(peak, ordinary(n_img, 0))
    peak = max(peak, cross(n_sem, n_img, n_img * d))
    held = n_img * d if spec.recovery else 0
    if spec.tail_layers:
        peak = max(peak, ordinary(n_sem, held))
    if spec.recovery:
        peak = max(peak, cross(n, n_sem, 0))
    return BYTES * peak
