"""Torch modules built from specs, registered with timm, and their measured costs.

``import archsearch.build`` registers the timm entry points (``archsearch_<family>`` for every family); the space
and cost layers never import this package, so solvers stay torch-free.
"""

from archsearch.build._builder import SpecLike, as_spec, build_model
from archsearch.build._registry import get_block, get_builder, list_blocks, list_builders, register_block, register_builder
from archsearch.build.cnn import ArchsearchCNN, archsearch_cnn, cnn_pretrained_cfg
from archsearch.build.stvit import ArchsearchSTViT, archsearch_stvit, stvit_pretrained_cfg
from archsearch.build.tinyvit import ArchsearchTinyViT, archsearch_tinyvit, tinyvit_pretrained_cfg
from archsearch.build.export import export_onnx
from archsearch.build.mci import ArchsearchMCi, archsearch_mci, mci_pretrained_cfg
from archsearch.build.measure import count_macs, count_params, measured_costs
from archsearch.build.vit import ArchsearchViT, archsearch_vit, load_timm_weights, vit_pretrained_cfg

__all__ = [
    "ArchsearchCNN", "ArchsearchSTViT", "SpecLike", "archsearch_cnn", "archsearch_stvit", "as_spec", "build_model",
    "cnn_pretrained_cfg", "count_macs", "count_params", "export_onnx", "get_block", "get_builder", "list_blocks",
    "list_builders", "measured_costs", "register_block", "register_builder", "stvit_pretrained_cfg",
    "ArchsearchTinyViT", "archsearch_tinyvit", "tinyvit_pretrained_cfg", "ArchsearchMCi", "archsearch_mci",
    "mci_pretrained_cfg", "ArchsearchViT", "archsearch_vit", "load_timm_weights", "vit_pretrained_cfg",
]
