"""Torch modules built from specs, registered with timm, and their measured costs.

``import archsearch.models`` registers the timm entry points (``archsearch_<family>`` for every family); the space
and cost layers never import this package, so solvers stay torch-free. ``models`` is timm's word for the same
thing; the package's former name ``archsearch.build`` remains a deprecated alias for one release.
"""

from archsearch.models._base import ArchsearchModel, TokenModel
from archsearch.models._builder import SpecLike, as_spec, build_model
from archsearch.models._registry import get_block, get_builder, list_blocks, list_builders, register_block, register_builder
from archsearch.models.cnn import ArchsearchCNN, archsearch_cnn, cnn_pretrained_cfg
from archsearch.models.stvit import ArchsearchSTViT, archsearch_stvit, stvit_pretrained_cfg
from archsearch.models.tinyvit import ArchsearchTinyViT, archsearch_tinyvit, tinyvit_pretrained_cfg
from archsearch.models.export import export_onnx
from archsearch.models.mci import ArchsearchMCi, archsearch_mci, mci_pretrained_cfg
from archsearch.models.measure import count_macs, count_params, measured_costs
from archsearch.models.vit import ArchsearchViT, archsearch_vit, load_timm_weights, vit_pretrained_cfg

__all__ = [
    "ArchsearchModel", "TokenModel", "ArchsearchCNN", "ArchsearchSTViT", "SpecLike", "archsearch_cnn", "archsearch_stvit", "as_spec", "build_model",
    "cnn_pretrained_cfg", "count_macs", "count_params", "export_onnx", "get_block", "get_builder", "list_blocks",
    "list_builders", "measured_costs", "register_block", "register_builder", "stvit_pretrained_cfg",
    "ArchsearchTinyViT", "archsearch_tinyvit", "tinyvit_pretrained_cfg", "ArchsearchMCi", "archsearch_mci",
    "mci_pretrained_cfg", "ArchsearchViT", "archsearch_vit", "load_timm_weights", "vit_pretrained_cfg",
]
