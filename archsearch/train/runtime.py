"""The trainer's runtime plumbing: the device and autocast, the DDP process group and its collectives,
peak memory and batch-1 latency, the RNG states, and atomic checkpoints read back with
``torch.load(weights_only=True)`` (written by hand: timm keeps these in its ``train.py`` script, not its
library)."""

from __future__ import annotations

import os
import random
import resource
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from archsearch.errors import SpecError
from archsearch.train.timing import time_forwards

CHECKPOINT_FORMAT = 2
_NAN = float("nan")


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error.

    Raises:
        SpecError: Unknown name, or CUDA asked for and not available.
    """
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise SpecError(f"--device: expected auto, cpu or cuda, got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SpecError(f"--device {device}: no CUDA device is available (torch.cuda.is_available() is False); "
                        "use --device cpu or auto")
    if device == "cuda" and _world()[1] > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return torch.device(device)


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp not in ("auto", "bf16", "fp16", "off"):
        raise SpecError(f"amp: expected auto, bf16, fp16 or off, got {amp!r}")
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Initialises the process group from torchrun's environment when WORLD_SIZE > 1."""
    rank, world = _world()
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
        rank, world = dist.get_rank(), dist.get_world_size()
    return rank, world


def peak_memory_bytes(device: torch.device) -> int:
    """CUDA: ``max_memory_allocated``; CPU: the process's resident-set high-water mark (Linux: KiB)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def measure_latency(model: nn.Module, input_size: Sequence[int], *, device: torch.device,
                    amp_dtype: torch.dtype | None = None, runs: int = 30, warmup: int = 10,
                    statistic: str = "median") -> float:
    """Batch-1 forward time in milliseconds (eval mode, no grad): the ``statistic`` (default the median)
    of ``max(30, runs)`` timed calls, after ``warmup`` untimed calls
    (:func:`archsearch.train.timing.time_forwards`: ``torch.utils.benchmark.Timer``, which synchronises
    CUDA, at the process's thread count). On CUDA the input is channels-last."""
    x = torch.randn(1, *input_size, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return time_forwards([(model, x)], runs=max(30, runs), warmup=warmup, rounds=1, statistic=statistic,
                         autocast=amp_dtype)[0]


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))


def _save_atomic(obj: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a kill during the save leaves the previous checkpoint intact


def _load_checkpoint(path: Path | None, key: str) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT or state.get("key") != key:
        return None  # another run's (or an older format's) checkpoint: start afresh rather than mix
    return state


def _gather(obj: dict[str, Any], world: int) -> list[dict[str, Any]]:
    """Every rank's ``obj`` (on every rank): what rank 0 stores so that each rank resumes its own state."""
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out



@torch.no_grad()
def _average_buffers(model: nn.Module, world: int) -> None:
    """Averages floating buffers (BatchNorm running statistics) over the ranks.

    DDP broadcasts rank 0's buffers before each forward, so after the last step every rank holds
    statistics updated by its own last batch; averaging makes evaluation and checkpoints agree.
    """
    for buf in model.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf)
            buf.div_(world)
