"""Latency predictor of CNN, ViT, STViT and MCi specs: a per-unit-type formula fitted to on-device timings (no torch).

A network is cut into *units*, each of a type: for CNNs the stem (with its max-pool, if any, in its
activations), every block of every superblock (types ``k1kxk1`` and ``k1dwk1``; the ``basic`` block
has no unit type, as the DeepMAD solvers do not search it and no calibration times it, so predicting
a spec with one raises :class:`~archsearch.errors.SpecError`) and the head (global pooling +
classifier); for ViTs (family ``vit``: the NViT/ReViT spaces) the patch embedding, every transformer
block and the head (final LayerNorm + classifier); for STViTs the same plus the cross-attention layers (``st_cross``); for
MCi (FastViT) the stem, each stage's downsampling, every RepMixer or attention block and the final
layers with the head; for TinyViT the stem, every MBConv block, each stage's patch merging, every
window-attention block (attention, local conv and MLP) and the head (pooling, LayerNorm, classifier);
for MCi and TinyViT with features summed over the exact cost model's operations. Each unit's predicted
latency is a non-negative combination of its features (:data:`FEATURES`)::

    t_unit = a + b * 1x1 MACs + c * dense kxk MACs + d * depthwise MACs + e * activations + f * weights

with MACs, activation elements (read and written by its layers) and weights in millions, and the
coefficients fitted per unit type by non-negative least squares on relative errors
(:func:`fit_coefficients`). For a ViT block "1x1 MACs" are its linear layers' (a linear layer over
tokens is a 1x1 convolution), "kxk MACs" the token-mixing products ``Q K^T`` and ``A V``; the patch
embedding is a ``patch x patch`` convolution. A CNN conv's MACs count its channels rounded up to the
calibration's ``channel_block`` (:attr:`LatencyModel.channel_block`: conv kernels compute whole blocks
of channels), and a kxk or depthwise MAC counts ``(k^2 / 9)^-kernel_exponent`` (a 3x3 MAC counts 1;
:attr:`LatencyModel.kernel_exponent`: larger kernels reuse each input more). The model's latency is
the sum over its units. Coefficients come from ``archsearch calibrate`` (measuring code in
:mod:`archsearch.train.latency`), saved as JSON under :func:`latency_cache_dir` ``/<device>/<space>.json``.

Structure the solvers use: for fixed depths and kernels every CNN feature with unrounded channels is a
posynomial in the widths (and in ``k^2`` with the kernel exponent), and no larger than the rounded
one, so the posynomial with the calibrated coefficients never overestimates the prediction (a valid
relaxation of a latency budget); a ViT block's features are sums of an attention part (in the heads
and query/key/value widths) and an MLP part, so its predicted latency is separable in them and
linear in every per-block choice; a TinyViT stage's predicted latency is a sum of its units (the
patch merging in the incoming and outgoing dims, ``depth`` identical blocks), additive over stages
like its MACs and params.

The package, one concept a file: :mod:`.units` (the feature vector, the unit types, a spec's units),
the units of each family (:mod:`.cnn`, :mod:`.vit`, :mod:`.stvit`, :mod:`.mci`, :mod:`.tinyvit`),
:mod:`.model` (the calibrated :class:`LatencyModel` and :func:`predict_latency`), :mod:`.fit` (the
non-negative least-squares fits) and :mod:`.store` (where calibrations are saved and found).
"""

from archsearch.cost.latency.cnn import block_features, cnn_units, head_features, stem_features
from archsearch.cost.latency.fit import fit_coefficients, fit_joint
from archsearch.cost.latency.mci import mci_unit_keys, mci_units
from archsearch.cost.latency.model import LatencyModel, predict_latency
from archsearch.cost.latency.store import (find_latency_model, latency_cache_dir, latency_model_path, load_latency_model,
                                           require_latency_model)
from archsearch.cost.latency.stvit import cross_features, stvit_units
from archsearch.cost.latency.tinyvit import (tinyvit_block_features, tinyvit_head_features, tinyvit_mbconv_features,
                                             tinyvit_merge_features, tinyvit_stem_features, tinyvit_unit_keys, tinyvit_units)
from archsearch.cost.latency.units import FEATURES, LATENCY_FAMILIES, STATISTICS, UNIT_TYPES, model_units, summed_features
from archsearch.cost.latency.vit import (patch_embed_features, vit_attention_features, vit_block_features, vit_head_features,
                                         vit_mlp_features, vit_units)

__all__ = ["FEATURES", "UNIT_TYPES", "LATENCY_FAMILIES", "LatencyModel", "block_features", "stem_features", "head_features",
           "cnn_units", "vit_attention_features", "vit_mlp_features", "vit_block_features", "patch_embed_features",
           "vit_head_features", "vit_units", "cross_features", "stvit_units", "mci_units", "mci_unit_keys", "tinyvit_stem_features", "tinyvit_mbconv_features",
           "tinyvit_merge_features", "tinyvit_block_features", "tinyvit_head_features", "tinyvit_unit_keys", "tinyvit_units",
           "model_units", "predict_latency", "fit_coefficients", "latency_cache_dir", "latency_model_path", "load_latency_model",
           "find_latency_model", "require_latency_model", "fit_joint", "summed_features", "STATISTICS"]
