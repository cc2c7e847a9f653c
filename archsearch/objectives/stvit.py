"""The attention interactions a semantic-token ViT keeps: a pure function of an :class:`~archsearch.space.STViTSpec`.

STViT (Chang et al., "Making Vision Transformers Efficient from A Token Sparsification View",
CVPR 2023) keeps every token in the shallow layers, where attention is local and needs the
detail, and lets a few semantic tokens carry the deeper layers. The objective of the STViT program
counts what of the dense model's attention survives: the query-key token pairs of every layer,

    interactions = sum over layers l of q_l * k_l

with q_l the query tokens and k_l the key/value tokens of layer l, the class token included:

* an image-token layer keeps ``(N + c)^2`` pairs, a layer on the semantic tokens ``(M + c)^2``;
* a semantic-token layer keeps ``(M + c)(N + c)``: it reads the whole image, which is what sets it
  apart from a layer on the semantic tokens;
* the recovery block keeps ``N (M + c)``.

What it trades off: pairs grow quadratically with the tokens while a layer's MACs grow about
linearly (``12 T C^2 + 2 T^2 C``), so under a MACs budget the program keeps full-token layers as
deep as it can afford, then spends what is left on as many semantic tokens as fit, and buys a
semantic-token layer (``2NC^2 + 2MNC`` more MACs than a layer on the semantic tokens) when its
``(M + c)(N + c)`` pairs are worth more than a larger M. On DeiT-S at 42% of the dense MACs the
optimum is the paper's layout (4 image-token layers, 2 semantic-token layers, 16 tokens).
Limits: it has no diminishing returns (one full-token layer outweighs many layers on few tokens)
and ignores width, so it compares token designs of one width; it is a proxy, not an accuracy
predictor.
"""

from __future__ import annotations

from typing import NamedTuple

from archsearch.space.stvit import STViTSpec

__all__ = ["AttentionInteractions", "attention_interactions"]


class AttentionInteractions(NamedTuple):
    """The kept query-key pairs, by kind of layer, and their share of the dense model's.

    ``share`` divides the total by ``depth * (N + c)^2``, what the same ViT keeps with no pooling.
    """

    total: int
    image_layers: int
    semantic_layers: int
    tail_layers: int
    recovery: int
    share: float


def attention_interactions(spec: STViTSpec) -> AttentionInteractions:
    """The query-key pairs the layers of ``spec`` attend (see the module docstring)."""
    n_img, n_sem = spec.image_tokens, spec.semantic_tokens
    image = spec.semantic_layer * n_img * n_img
    semantic = spec.semantic_layers * n_sem * n_img
    tail = spec.tail_layers * n_sem * n_sem
    recovery = spec.num_patches * n_sem if spec.recovery else 0
    total = image + semantic + tail + recovery
    return AttentionInteractions(total, image, semantic, tail, recovery, total / (spec.depth * n_img * n_img))
