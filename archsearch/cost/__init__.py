"""Cost models: exact params, MACs and activation memory as pure functions of a spec (no torch)."""

from archsearch.cost.cnn import (
    ConvLayer, cnn_activation_memory, cnn_layers, cnn_macs, cnn_params, deepmad_flops, deepmad_params,
)
from archsearch.cost.tinyvit import TinyViTOp, tinyvit_activation_memory, tinyvit_macs, tinyvit_ops, tinyvit_params
from archsearch.cost.mci import MCiOp, mci_activation_memory, mci_macs, mci_ops, mci_params
from archsearch.cost.registry import CostModel, activation_memory, costs, get_cost_model, macs, params, register_cost_model

from archsearch.cost.stvit import (
    cross_layer_macs, cross_layer_params, paper_macs, stvit_activation_memory, stvit_macs, stvit_params,
)
from archsearch.cost.vit import vit_activation_memory, vit_block_macs, vit_block_params, vit_macs, vit_params

register_cost_model("cnn", CostModel(cnn_params, cnn_macs, cnn_activation_memory))
register_cost_model("vit", CostModel(vit_params, vit_macs, vit_activation_memory))
register_cost_model("stvit", CostModel(stvit_params, stvit_macs, stvit_activation_memory))
register_cost_model("tinyvit", CostModel(tinyvit_params, tinyvit_macs, tinyvit_activation_memory))
register_cost_model("mci", CostModel(mci_params, mci_macs, mci_activation_memory))

__all__ = [
    "ConvLayer", "CostModel", "activation_memory", "cnn_activation_memory", "cnn_layers", "cnn_macs", "cnn_params",
    "costs", "cross_layer_macs", "deepmad_flops", "deepmad_params", "cross_layer_params", "get_cost_model", "macs", "paper_macs", "params",
    "register_cost_model", "stvit_activation_memory", "stvit_macs", "stvit_params", "vit_activation_memory",
    "vit_block_macs", "vit_block_params", "vit_macs", "vit_params", "tinyvit_activation_memory", "tinyvit_macs",
    "tinyvit_params", "TinyViTOp", "tinyvit_ops", "MCiOp", "mci_activation_memory", "mci_macs", "mci_ops", "mci_params",
]
