"""Global structural pruning of a trained ViT with Hessian-aware saliency (NViT).

Yang et al., "Global Vision Transformer Pruning with Hessian-Aware Saliency", CVPR 2023 (the facts used
here are those of ``shared/PAPERS.md``; nothing is taken from the reference code):

* **Structures and groups.** EMB (the embedding width, shared by every block) and, per block, the
  heads, the query/key indices per head (head-aligned: index j of every kept head), the value indices
  per head and the MLP units, cut into contiguous groups (default sizes EMB 16, heads 2, QK 8, V 8,
  MLP 16; the last group of a layer may be smaller). Each group S has a gate ``g_S = 1`` that
  multiplies *every* parameter indexed by it (the parameters its removal deletes).
* **Saliency.** ``hessian``: ``I_S = (sum_{s in S} w_s dL/dw_s / c)^2`` — the paper's Hessian-norm
  estimate, which reduces to the squared derivative of the loss with respect to the gate,
  ``(dL/dg_S)^2`` at ``g = 1`` — with the per-structure normaliser ``c`` (EMB 12, heads 12, QK 2, V 2,
  MLP 1). ``magnitude``: ``I_S = (||w_S||_2 / c)^2`` on the weights still in use (the baseline). Both
  are averaged over the batches between two pruning events and smoothed with an EMA (0.9) across
  events; one ranking covers all structures of all blocks.
* **Latency-aware.** ``I^L_S = I_S - eta * dLat(S)`` with ``dLat`` in milliseconds: the drop of the
  predicted latency when the group goes. The prediction is a calibrated ViT latency model
  (``archsearch calibrate --space nvit`` on this device, chosen with ``latency_space``; its per-block
  formula takes any dims and token count), or by default the GMACs proxy: MACs times the dense
  model's measured milliseconds per MAC on this device (eta keeps its unit either way); the results
  say which (``latency_model``).
* **Schedule.** Training continues (loss: cross-entropy on the labels plus the KL divergence to the
  frozen dense model; at the start the KL term and its gradient are zero, so the first saliencies
  are the task loss's); every ``every`` batches, after the saliencies of those batches are folded in,
  the lowest-ranked groups are removed (never a layer's last group) until the cost drops to the
  event's goal, which falls linearly from the dense cost to the target over ``steps`` events. The
  last event stops at the first removal that meets the target, so the result never exceeds it; the
  cost model (:mod:`archsearch.cost.vit`) decides. Then the pruned dims are removed physically (the
  module becomes the :class:`~archsearch.models.vit.ArchsearchViT` of its spec, each block keeping the
  dense block's attention scale in ``ViTBlockSpec.scale``) and the model is fine-tuned with a recipe.

The gated forward computes every LayerNorm's statistics over the kept EMB channels only, so a gated
model with some gates at zero computes what the physically pruned model computes.

The package, one concept a file: :mod:`.config` (the structures, their groups and normalisers,
:class:`PruneConfig`), :mod:`.gated` (the gated model, its saliencies, the pruned spec and the
physical slicing), :mod:`.from_timm` (a timm ViT as the dense :class:`ArchsearchViT`),
:mod:`.schedule` (one pruning event: the latency-aware global ranking), :mod:`.phase` (training while
pruning), :mod:`.redistribution` (kept dims per block and their plot) and :mod:`.run` (``archsearch
prune``: dense model, pruning, fine-tuning, the run directory).
"""

from archsearch.train.prune.config import DEFAULT_GROUPS, DEFAULT_NORMALISERS, STRUCTURES, Criterion, PruneConfig
from archsearch.train.prune.from_timm import dense_from_timm, load_checkpoint_into, spec_from_timm
from archsearch.train.prune.gated import GatedViT, smallest_spec
from archsearch.train.prune.phase import prune_vit
from archsearch.train.prune.redistribution import profile, redistribution_plot
from archsearch.train.prune.run import prune_model
from archsearch.train.prune.schedule import LatencyFn, gmacs_proxy, prune_schedule

__all__ = [
    "DEFAULT_GROUPS", "DEFAULT_NORMALISERS", "STRUCTURES", "Criterion", "GatedViT", "LatencyFn", "PruneConfig",
    "dense_from_timm", "gmacs_proxy", "load_checkpoint_into", "profile", "prune_model", "prune_schedule", "prune_vit",
    "redistribution_plot", "smallest_spec", "spec_from_timm",
]
