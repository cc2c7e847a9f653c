"""ONNX export of built models."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

__all__ = ["export_onnx"]


def _in_channels(model: nn.Module) -> int:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if cfg.get("input_size"):
        return int(cfg["input_size"][0])
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.in_channels if conv is not None else 3


def export_onnx(
    model: nn.Module, path: str | Path, *, resolution: int, opset: int = 17, in_channels: int | None = None
) -> Path:
    """Exports a model to ONNX in eval mode from a (1, C, resolution, resolution) dummy input.

    The batch axis of the input (``input``) and output (``output``) is dynamic.

    Args:
        model: The module (its train/eval mode is restored afterwards).
        path: The ``.onnx`` file to write.
        resolution: Input height and width.
        opset: ONNX opset version.
        in_channels: Input channels; read from the model's ``pretrained_cfg`` or first conv when None.

    Returns:
        The path written.
    """
    path = Path(path)
    param = next(model.parameters(), None)
    dummy = torch.randn(
        1, in_channels or _in_channels(model), resolution, resolution,
        device=param.device if param is not None else "cpu",
    )
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter is chosen on purpose: torch.export's exporter emits opset 18
            # and its down-conversion to 17 fails offline (ReduceMean's axes input); it is deprecated.
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            torch.onnx.export(
                model, (dummy,), str(path), opset_version=opset, input_names=["input"], output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, dynamo=False,
            )
    finally:
        model.train(was_training)
    return path
