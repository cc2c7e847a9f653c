"""Cost models: exact params, MACs and activation memory as pure functions of a spec (no torch)."""

from archsearch.cost.cnn import ConvLayer, cnn_activation_memory, cnn_layers, cnn_macs, cnn_params
from archsearch.cost.tinyvit import tinyvit_activation_memory, tinyvit_macs, tinyvit_params
from archsearch.cost.registry import CostModel, activation_memory, costs, get_cost_model, macs, params, register_cost_model

register_cost_model("cnn", CostModel(cnn_params, cnn_macs, cnn_activation_memory))
register_cost_model("tinyvit", CostModel(tinyvit_params, tinyvit_macs, tinyvit_activation_memory))

__all__ = [
    "ConvLayer", "CostModel", "activation_memory", "cnn_activation_memory", "cnn_layers", "cnn_macs", "cnn_params",
    "costs", "get_cost_model", "macs", "params", "register_cost_model", "tinyvit_activation_memory", "tinyvit_macs",
    "tinyvit_params",
]
