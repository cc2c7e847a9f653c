"""Measured costs of built modules: parameters and ``FlopCounterMode`` MACs on the meta device.

These are the references the cost models (:mod:`archsearch.cost`) are tested against.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from archsearch.models._builder import SpecLike, as_spec, build_model

__all__ = ["count_params", "count_macs", "measured_costs"]


def count_params(module: nn.Module) -> int:
    """Number of parameter elements (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in module.parameters())


def count_macs(module: nn.Module, resolution: int, *, in_channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass at batch 1: ``FlopCounterMode`` total flops // 2.

    The pass runs in eval mode on the meta device (no arithmetic is done); a module with real
    weights is run on meta stand-ins of its tensors and is left unchanged.

    Args:
        module: The module; called as ``module(x)`` with ``x`` of shape (1, C, H, W).
        resolution: Input height and width.
        in_channels: Input channels C.
    """
    x = torch.empty(1, in_channels, resolution, resolution, device="meta")
    tensors = dict(itertools.chain(
        module.named_parameters(remove_duplicate=False), module.named_buffers(remove_duplicate=False)
    ))
    was_training = module.training
    module.eval()  # batch-1 BatchNorm on a 1x1 map is refused in training mode
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            if all(t.is_meta for t in tensors.values()):
                module(x)
            else:
                functional_call(module, {k: torch.empty_like(t, device="meta") for k, t in tensors.items()}, (x,))
    finally:
        module.train(was_training)
    return counter.get_total_flops() // 2


def measured_costs(spec: SpecLike) -> dict[str, int]:
    """Params and MACs of the module built from a spec, with and without the classifier head.

    The backbone is the model with its classifier removed (``reset_classifier(0)``), the convention
    of the cost models.

    Returns:
        ``measured_params``, ``measured_macs`` (backbone), ``measured_params_with_head`` and
        ``measured_macs_with_head``.
    """
    spec = as_spec(spec)
    with torch.device("meta"):
        model = build_model(spec)
    channels, side = model.pretrained_cfg["input_size"][0], model.pretrained_cfg["input_size"][-1]
    out = {
        "measured_params_with_head": count_params(model),
        "measured_macs_with_head": count_macs(model, side, in_channels=channels),
    }
    with torch.device("meta"):
        model.reset_classifier(0)
    out["measured_params"] = count_params(model)
    out["measured_macs"] = count_macs(model, side, in_channels=channels)
    return {k: out[k] for k in ("measured_params", "measured_macs", "measured_params_with_head", "measured_macs_with_head")}
