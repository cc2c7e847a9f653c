"""Training and measuring candidates: datasets, recipes and the trainer (CPU, CUDA, DDP, AMP)."""

from archsearch.train.datasets import (
    BatchTransform, DatasetError, DatasetInfo, ImageData, default_data_dir, get_dataset, list_datasets, register_dataset,
)
from archsearch.train.recipes import Recipe, get_recipe, list_recipes, lr_factor, register_recipe
from archsearch.train.teacher import CacheError, OnlineTeacher, TeacherCache, build_cache, load_teacher
from archsearch.train.trainer import (
    EpochRecord, TargetProvider, TrainResult, init_distributed, measure_latency, peak_memory_bytes, resolve_device,
    soft_cross_entropy, train,
)

__all__ = [
    "BatchTransform", "CacheError", "DatasetError", "DatasetInfo", "EpochRecord", "ImageData", "OnlineTeacher", "Recipe",
    "TargetProvider", "TeacherCache", "TrainResult", "build_cache", "default_data_dir", "get_dataset", "get_recipe",
    "init_distributed", "list_datasets", "list_recipes", "load_teacher", "lr_factor", "measure_latency", "peak_memory_bytes",
    "register_dataset", "register_recipe", "resolve_device", "soft_cross_entropy", "train",
]
