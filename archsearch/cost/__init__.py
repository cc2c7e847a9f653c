"""Cost models: exact params, MACs and activation memory as pure functions of a spec (no torch)."""

from archsearch.cost.cnn import ConvLayer, cnn_activation_memory, cnn_layers, cnn_macs, cnn_params
from archsearch.cost.mci import MCiOp, mci_activation_memory, mci_macs, mci_ops, mci_params
from archsearch.cost.registry import CostModel, activation_memory, costs, get_cost_model, macs, params, register_cost_model

register_cost_model("cnn", CostModel(cnn_params, cnn_macs, cnn_activation_memory))
register_cost_model("mci", CostModel(mci_params, mci_macs, mci_activation_memory))

__all__ = [
    "ConvLayer", "CostModel", "MCiOp", "activation_memory", "cnn_activation_memory", "cnn_layers", "cnn_macs",
    "cnn_params", "costs", "get_cost_model", "macs", "mci_activation_memory", "mci_macs", "mci_ops", "mci_params",
    "params", "register_cost_model",
]
