"""Training and measuring candidates: datasets, recipes and the trainer (CPU, CUDA, DDP, AMP)."""

from archsearch.train.datasets import (
    BatchTransform, DatasetError, DatasetInfo, ImageData, default_data_dir, get_dataset, list_datasets, register_dataset,
)
from archsearch.train.recipes import Recipe, get_recipe, list_recipes, lr_factor, register_recipe
from archsearch.train.trainer import EpochRecord, TrainResult, init_distributed, measure_latency, peak_memory_bytes, resolve_device, train

__all__ = [
    "BatchTransform", "DatasetError", "DatasetInfo", "EpochRecord", "ImageData", "Recipe", "TrainResult",
    "default_data_dir", "get_dataset", "get_recipe", "init_distributed", "list_datasets", "list_recipes", "lr_factor", "measure_latency",
    "peak_memory_bytes", "register_dataset", "register_recipe", "resolve_device", "train",
]
