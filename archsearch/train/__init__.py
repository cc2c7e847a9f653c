"""Training and measuring candidates: datasets, recipes and the trainer (CPU, CUDA, DDP, AMP).

Training uses timm's components (optimisers, schedules, transforms, Mixup/CutMix, losses, EMA), built
from declarative recipes by :mod:`~archsearch.train.factories`. What is written here by hand is what timm
does not provide: the registries of datasets and recipes, the trainer's loop with its resumable
checkpoints and progress reports, the batch pipeline and the teacher cache, latency timing and pruning.

The names below are imported on first use (PEP 562), so that ``archsearch.train.datasets``,
``archsearch.train.recipes`` and ``archsearch.train.progress`` (registries the CLI checks arguments
against, and the progress reports it renders) import without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "datasets": ("BatchTransform", "DatasetError", "DatasetInfo", "ImageData", "check_dataset", "default_data_dir", "get_dataset",
                 "list_datasets", "register_dataset"),
    "factories": ("create_ema", "create_loss", "create_mixup", "create_optimizer", "create_scheduler", "create_transforms"),
    "progress": ("ProgressCallback", "TrainProgress"),
    "recipes": ("Recipe", "get_recipe", "list_recipes", "register_recipe"),
    "teacher": ("CacheError", "OnlineTeacher", "TeacherCache", "build_cache", "load_teacher"),
    "trainer": ("EpochRecord", "TargetProvider", "TrainResult", "init_distributed", "measure_latency", "peak_memory_bytes",
                "resolve_device", "soft_cross_entropy", "train"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
