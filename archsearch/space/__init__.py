"""Specs, budgets and search spaces: frozen dataclasses with JSON round-trip (no torch)."""

from archsearch.space.base import ArchSpec, get_family, list_families, load_spec, register_family, spec_from_dict
from archsearch.space.budget import BUDGET_KEYS, Budget, format_count, parse_count, parse_latency
from archsearch.space.cnn import BLOCK_TYPES, SHORTCUTS, CNNSpec, StageSpec, StemSpec, conv_out, pool_out, se_channels
from archsearch.space.deepmad_models import DEEPMAD_R18, DEEPMAD_R34, DEEPMAD_R50
from archsearch.space.resnet import RESNET_DEPTHS, resnet_spec
from archsearch.space.vit import DEIT, ViTBlockSpec, ViTSpec
from archsearch.space.stvit import STVIT_DEIT_LAYOUT, STViTSpace, STViTSpec
from archsearch.space.tinyvit import TINYVIT_5M, TINYVIT_11M, TINYVIT_21M, TinyViTSpec
from archsearch.space.mci import MCI_TEMPLATES, TOKEN_MIXERS, MCiSpec, mci_template
from archsearch.space.search_space import BaseSpace, SearchSpace, get_space, list_spaces, register_space
from archsearch.space.vit_templates import ReViTSpace, revit_blocks, revit_spec

__all__ = [
    "ArchSpec", "BLOCK_TYPES", "BUDGET_KEYS", "DEEPMAD_R18", "DEEPMAD_R34", "DEEPMAD_R50", "SHORTCUTS", "BaseSpace", "Budget", "CNNSpec", "MCI_TEMPLATES", "MCiSpec", "TOKEN_MIXERS", "SearchSpace", "StageSpec",
    "StemSpec", "conv_out", "format_count", "get_family", "get_space", "list_families", "list_spaces",
    "load_spec", "parse_count", "parse_latency", "register_family", "register_space", "se_channels",
    "spec_from_dict", "DEIT", "STVIT_DEIT_LAYOUT", "STViTSpace", "STViTSpec", "ViTBlockSpec", "ViTSpec",
    "TINYVIT_5M", "TINYVIT_11M", "TINYVIT_21M", "TinyViTSpec", "mci_template", "ReViTSpace", "revit_blocks",
    "revit_spec", "RESNET_DEPTHS", "pool_out", "resnet_spec",
]
