"""Fast distillation: a teacher's sparse soft labels computed once, replayed by every student.

After TinyViT (Wu et al., "TinyViT: Fast Pretraining Distillation for Small Vision Transformers",
ECCV 2022, section 3.1): the teacher runs once per epoch over the training split; for every image it
stores the top-K softmax probabilities (float16), their class indices (int16) and the int32 seed of
the image's augmentation, a fixed record of ``4K + 4`` bytes. A student trained against the cache
replays the augmentation from the seed (:func:`~archsearch.train.datasets.replay_augmentation`), so
it sees the teacher's image, and rebuilds the soft label: the K stored probabilities at their
indices and ``(1 - sum(topK)) / (C - K)`` on every other class; the loss is the soft-target
cross-entropy. No teacher forward pass runs while students train.

A cache is a directory::

    CACHE/header.json   teacher, dataset (name, size, fingerprint of the training split), K, classes,
                        epochs, augmentation, seed, progress (written atomically)
    CACHE/records.npy   a NumPy array of shape (epochs, train size) of the structured dtype
                        [("prob", "<f2", (K,)), ("index", "<i2", (K,)), ("seed", "<i4")],
                        memory-mapped (``np.load(..., mmap_mode="r")``)

:func:`build_cache` writes it resumably: records are flushed, then the header's progress advances,
so a killed run continues from the last flushed batch. :class:`TeacherCache` opens one, checks it
against the dataset and recipe a student trains with, and is the trainer's target provider.

Written here because timm has no teacher cache (TinyViT's own is part of its training scripts, not a
library): the records, their resumable writing and the seed replay are this module's; the students'
loss is timm's ``SoftTargetCrossEntropy``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from archsearch.errors import ArchsearchError, SpecError, did_you_mean
from archsearch.train.datasets import BatchTransform, ImageData, Split

__all__ = [
    "CACHE_FORMAT", "CacheError", "OnlineTeacher", "TeacherCache", "build_cache", "dataset_fingerprint", "epoch_seeds",
    "load_teacher", "record_dtype", "rebuild_soft_labels",
]

CACHE_FORMAT, CACHE_VERSION = "archsearch-teacher-cache", 1
HEADER, RECORDS = "header.json", "records.npy"
#: Version of the seed -> crop/flip mapping (:func:`~archsearch.train.datasets.replay_augmentation`).
REPLAY = "lowbias32-crop-flip-v1"
_PROGRESS_KEYS = ("epochs_done", "rows_done", "complete", "updated", "teacher_time_s")


class CacheError(ArchsearchError):
    """A teacher cache is missing, unreadable, or was made for another dataset, recipe or teacher."""


def record_dtype(topk: int) -> np.dtype:
    """The packed record of one image in one epoch: ``4 * topk + 4`` bytes."""
    return np.dtype([("prob", "<f2", (topk,)), ("index", "<i2", (topk,)), ("seed", "<i4")])


def epoch_seeds(seed: int, epoch: int, size: int) -> np.ndarray:
    """The int32 augmentation seeds of one epoch's images, from the run seed (NumPy's PCG64 stream)."""
    gen = np.random.Generator(np.random.PCG64([int(seed) % 2**32, int(epoch)]))
    return gen.integers(0, 2**31 - 1, size=size, dtype=np.int64, endpoint=True).astype(np.int32)


def dataset_fingerprint(split: Split) -> str:
    """SHA-256 (16 hex digits) of a training split: its images and labels, or its file list.

    Two splits with the same fingerprint hold the same images in the same order, so record ``i`` of a
    cache belongs to image ``i``.
    """
    h = hashlib.sha256()
    if hasattr(split, "images") and hasattr(split, "labels"):
        images, labels = split.images, split.labels  # type: ignore[attr-defined]
        h.update(json.dumps(list(images.shape)).encode())
        h.update(images.contiguous().numpy().tobytes())
        h.update(labels.long().numpy().tobytes())
    elif hasattr(split, "samples"):
        h.update(json.dumps([[str(p), int(y)] for p, y in split.samples]).encode())  # type: ignore[attr-defined]
    else:
        raise CacheError(f"dataset: cannot fingerprint a {type(split).__name__} split (expected tensors or a file list)")
    return h.hexdigest()[:16]


def rebuild_soft_labels(prob: torch.Tensor, index: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Dense soft labels from top-K records (TinyViT): the K probabilities at their indices and the
    remaining mass ``(1 - sum) / (C - K)`` on every other class.

    Args:
        prob: (N, K) probabilities (any float dtype).
        index: (N, K) class indices.
        num_classes: C.

    Returns:
        float32 (N, C), rows summing to 1 (up to the float16 rounding of the stored values).
    """
    p = prob.float()
    n, k = p.shape
    if k < num_classes:
        rest = (1.0 - p.sum(1, keepdim=True)).clamp_min(0) / (num_classes - k)
        out = rest.expand(n, num_classes).clone()
    else:
        out = torch.zeros(n, num_classes, device=p.device)
    return out.scatter_(1, index.long().to(p.device), p)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The weights in a checkpoint: a state dict, or one under ``model``/``state_dict``/``model_ema``."""
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "model_ema"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CacheError(f"--checkpoint {path}: no state dict of tensors found (expected a state dict, or one under "
                         "'model' or 'state_dict')")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _load_weights(model: nn.Module, path: Path) -> None:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CacheError(f"--checkpoint: file not found: {path}") from None
    except Exception as exc:
        raise CacheError(f"--checkpoint {path}: not a weights-only torch checkpoint ({str(exc).splitlines()[0]})") from None
    state = _state_dict(obj, path)
    own = model.state_dict()
    for name, tensor in state.items():
        if name in own and own[name].shape != tensor.shape:
            raise CacheError(f"--checkpoint {path}: {name} has shape {tuple(tensor.shape)}, the teacher expects "
                             f"{tuple(own[name].shape)}; a teacher must be trained on the dataset's classes and input "
                             "(a fresh classifier would make its soft labels noise)")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        names = (missing or unexpected)[:3]
        raise CacheError(f"--checkpoint {path}: {'missing' if missing else 'unexpected'} weights {names} "
                         f"({len(missing)} missing, {len(unexpected)} unexpected); it is not a checkpoint of this teacher")


def load_teacher(source: str, *, num_classes: int, checkpoint: str | Path | None = None, random_weights: bool = False,
                 resolution: int | None = None, spec: Any = None) -> tuple[nn.Module, dict[str, Any]]:
    """Builds a teacher and loads its weights.

    Args:
        source: ``timm:NAME`` (``timm.create_model``), an archsearch spec JSON (or ``candidates.json``:
            its first candidate), or a checkpoint file that holds a ``spec`` dict next to its weights.
        num_classes: The dataset's classes (the teacher's classifier must have as many outputs).
        checkpoint: Weights (``torch.load(weights_only=True)``); for a checkpoint ``source``, the source itself.
        random_weights: Allow a teacher without weights (tests and timing benchmarks only).
        resolution: Input side of the teacher (default: the model's own).
        spec: The architecture of a checkpoint ``source`` that does not carry it (found by the caller,
            e.g. in the study of the run that trained it).

    Returns:
        The module in eval mode, with ``pretrained_cfg["input_size"]`` = (C, R, R), and its identity
        (recorded in the cache header).

    Raises:
        CacheError: No weights (and not ``random_weights``), or weights of another model.
        SpecError: An unknown timm model or a bad spec.
    """
    from archsearch.models import build_model, count_macs, count_params
    from archsearch.space import load_spec, spec_from_dict

    path = Path(source)
    identity: dict[str, Any] = {"source": source}
    if source.startswith("timm:"):
        import timm

        name = source[5:]
        if name not in timm.list_models():
            raise SpecError(f"--model {source}: unknown timm model {name!r}{did_you_mean(name, timm.list_models())} "
                            f"(see timm.list_models())")
        kwargs: dict[str, Any] = {"num_classes": num_classes}
        if resolution is not None:
            try:
                model = timm.create_model(name, pretrained=False, img_size=resolution, **kwargs)
            except TypeError:  # models without a fixed input size take no img_size
                model = timm.create_model(name, pretrained=False, **kwargs)
        else:
            model = timm.create_model(name, pretrained=False, **kwargs)
    elif path.suffix == ".json":
        if not path.is_file():
            raise SpecError(f"--model: expected timm:NAME, a spec .json or a checkpoint file, got {source!r} (no such file)")
        arch = load_spec(path)
        identity["spec"] = arch.to_dict()
        model = build_model(arch, num_classes=num_classes)
    elif path.is_file():
        if spec is None:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise CacheError(f"--model {path}: not a weights-only torch checkpoint ({str(exc).splitlines()[0]})") from None
            spec = obj.get("spec") if isinstance(obj, dict) else None
            if spec is None:
                raise CacheError(f"--model {path}: the checkpoint names no architecture (no 'spec' entry, not a checkpoint "
                                 "of a validated run); use --model SPEC.json --checkpoint PATH or timm:NAME --checkpoint PATH")
        arch = spec if not isinstance(spec, dict) else spec_from_dict(spec)
        identity["spec"] = arch.to_dict()
        model = build_model(arch, num_classes=num_classes)
        checkpoint = checkpoint or path
    else:
        raise SpecError(f"--model: expected timm:NAME, a spec .json or a checkpoint file, got {source!r} (no such file)")
    if checkpoint is not None:
        _load_weights(model, Path(checkpoint))
        identity.update(checkpoint=str(checkpoint), checkpoint_sha256=_sha256(Path(checkpoint)), weights="checkpoint")
    elif random_weights:
        identity["weights"] = "random"
    else:
        raise CacheError(f"--model {source}: no teacher weights (pretrained weights are not downloaded); give --checkpoint PATH "
                         "of a teacher trained on the dataset, or --random-weights for tests and timings")
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    channels, side = tuple(cfg.get("input_size", (3, 224, 224)))[0], tuple(cfg.get("input_size", (3, 224, 224)))[-1]
    side = resolution or side
    cfg["input_size"] = (channels, side, side)
    model.pretrained_cfg = cfg
    identity.update(channels=channels, resolution=side, num_classes=num_classes, params=count_params(model),
                    macs=count_macs(model, side, in_channels=channels))
    return model.eval(), identity


def _atomic_json(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)  # a kill mid-write leaves the previous header


def _cache_id(header: dict[str, Any]) -> str:
    fixed = {k: v for k, v in header.items() if k not in (*_PROGRESS_KEYS, "id", "created", "versions")}
    return hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()[:16]


def _augmentation(data: ImageData, augment: bool) -> dict[str, Any]:
    info = data.info
    return {"enabled": bool(augment and (info.pad or info.flip)), "pad": info.pad if augment else 0,
            "flip": bool(info.flip and augment), "replay": REPLAY}


def _topk_records(probs: torch.Tensor, topk: int) -> tuple[np.ndarray, np.ndarray]:
    values, index = probs.float().topk(topk, dim=1)
    return values.half().cpu().numpy(), index.to(torch.int16).cpu().numpy()


def build_cache(*, teacher: nn.Module, identity: dict[str, Any], data: ImageData, out: str | Path, epochs: int, topk: int,
                seed: int = 0, augment: bool = True, device: str = "auto", batch_size: int = 256, amp: str = "off",
                progress: Callable[[int, int], None] | None = None, stop_after: int | None = None) -> dict[str, Any]:
    """Runs the teacher over the training split once per epoch and writes the cache (or resumes it).

    Args:
        teacher: The teacher (eval mode) with ``pretrained_cfg["input_size"]``.
        identity: What the teacher is (from :func:`load_teacher`), recorded in the header.
        data: The dataset (its train split is cached; record ``i`` belongs to image ``i``).
        out: The cache directory.
        epochs: Epochs of augmented views to store (students may train up to this many epochs).
        topk: K, the probabilities kept per image (1 <= K <= classes <= 32767).
        seed: Derives every (epoch, image) augmentation seed (:func:`epoch_seeds`); recorded. Use the
            seed the students validate with: the digits split depends on it, and the cache is checked.
        augment: Store augmented views (the dataset's crop and flip); False for recipes without augmentation.
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: Images per teacher forward.
        amp: Autocast dtype of the teacher on CUDA (``off`` default, ``bf16``, ``fp16``, ``auto``).
        progress: Called with (rows done, rows in all) after every batch.
        stop_after: Stop after this many batches of this call (tests of resuming).

    Returns:
        The header (``complete`` is False when ``stop_after`` cut the run short).

    Raises:
        CacheError: ``out`` holds a cache made with other settings.
        SpecError: A bad K or epoch count.
    """
    from archsearch import __version__
    from archsearch.train.runtime import _amp_dtype, resolve_device

    info = data.info
    if not isinstance(epochs, int) or not 1 <= epochs <= 10_000:
        raise SpecError(f"--epochs: expected an integer in [1, 10000], got {epochs!r}")
    if info.num_classes > 32767:
        raise SpecError(f"dataset {info.name}: {info.num_classes} classes do not fit int16 indices (at most 32767)")
    if not isinstance(topk, int) or not 1 <= topk <= info.num_classes:
        raise SpecError(f"--topk: expected an integer in [1, {info.num_classes}] (the classes of {info.name}), got {topk!r}")
    if batch_size < 1:
        raise SpecError(f"--batch-size: expected an integer >= 1, got {batch_size}")
    out = Path(out)
    n = len(data.train)
    header: dict[str, Any] = {
        "format": CACHE_FORMAT, "version": CACHE_VERSION, "teacher": json.loads(json.dumps(identity)),
        "dataset": {"name": info.name, "train_size": n, "fingerprint": dataset_fingerprint(data.train),
                    "resolution": info.resolution, "channels": info.channels},
        "num_classes": info.num_classes, "topk": topk, "record_bytes": record_dtype(topk).itemsize, "epochs": epochs,
        "augmentation": _augmentation(data, augment), "seed": seed,
    }
    header["id"] = _cache_id(header)
    if (out / HEADER).is_file():
        old = _read_header(out)
        if old.get("id") != header["id"]:
            diff = [k for k in header if k not in ("id",) and old.get(k) != header[k]]
            raise CacheError(f"--out {out}: holds a cache made with other settings ({', '.join(diff) or 'format'} differ); "
                             "choose another --out or delete it")
        header.update({k: old[k] for k in (*_PROGRESS_KEYS, "created", "versions") if k in old})
        if not (out / RECORDS).is_file():
            raise CacheError(f"--out {out}: {RECORDS} is missing; delete the directory and run again")
        records = np.load(out / RECORDS, mmap_mode="r+")
    else:
        out.mkdir(parents=True, exist_ok=True)
        header.update(epochs_done=0, rows_done=0, complete=False, teacher_time_s=0.0,
                      created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                      versions={"archsearch": __version__, "torch": torch.__version__, "numpy": np.__version__})
        records = np.lib.format.open_memmap(out / RECORDS, mode="w+", dtype=record_dtype(topk), shape=(epochs, n))
        _atomic_json(header, out / HEADER)
    if header["complete"]:
        return header

    dev = resolve_device(device)
    amp_dtype = _amp_dtype(amp, dev)
    channels, side = teacher.pretrained_cfg["input_size"][0], teacher.pretrained_cfg["input_size"][-1]
    transform = BatchTransform(info, channels=channels, resolution=side, device=dev)
    teacher.to(dev).eval()
    aug = header["augmentation"]["enabled"]
    total, batches, last_save = epochs * n, 0, time.monotonic()
    for epoch in range(header["epochs_done"], epochs):
        seeds = epoch_seeds(seed, epoch, n)
        lo = header["rows_done"] if epoch == header["epochs_done"] else 0
        t0 = time.perf_counter()
        for images, _ in data.train.batches(range(lo, n), batch_size):
            if stop_after is not None and batches >= stop_after:
                return _save_progress(records, header, out)
            hi = lo + len(images)
            x = transform(images, train=aug, seeds=seeds[lo:hi])
            with torch.no_grad(), torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                probs = teacher(x).float().softmax(1)
            prob, index = _topk_records(probs, topk)
            block = records[epoch, lo:hi]
            block["prob"], block["index"], block["seed"] = prob, index, seeds[lo:hi]
            header["teacher_time_s"] += time.perf_counter() - t0
            header["epochs_done"], header["rows_done"] = (epoch, hi) if hi < n else (epoch + 1, 0)
            batches, lo = batches + 1, hi
            if progress is not None:
                progress(epoch * n + hi, total)
            if time.monotonic() - last_save > 2.0:
                _save_progress(records, header, out)
                last_save = time.monotonic()
            t0 = time.perf_counter()
    header["complete"] = True
    return _save_progress(records, header, out)


def _save_progress(records: np.memmap, header: dict[str, Any], out: Path) -> dict[str, Any]:
    records.flush()  # records first: the header never claims rows that are not on disk
    header["updated"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    _atomic_json(header, out / HEADER)
    return header


def _read_header(path: Path) -> dict[str, Any]:
    from archsearch._jsonio import read_json

    if not (path / HEADER).exists():
        raise CacheError(f"--distill {path}: not a teacher cache (no {HEADER}); make one with `archsearch teacher`")
    header = read_json(path / HEADER, what="--distill", error=CacheError)
    if not isinstance(header, dict) or header.get("format") != CACHE_FORMAT:
        raise CacheError(f"--distill {path}: {HEADER} is not an archsearch teacher cache header")
    if header.get("version") != CACHE_VERSION:
        raise CacheError(f"--distill {path}: cache format version {header.get('version')!r}, this archsearch reads {CACHE_VERSION}")
    return header


class TeacherCache:
    """A finished teacher cache, opened read-only and memory-mapped; the trainer's target provider.

    Args:
        path: The cache directory.

    Raises:
        CacheError: Not a cache, an unfinished one, or records that do not match the header.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.header = _read_header(self.path)
        h = self.header
        if not h.get("complete"):
            raise CacheError(f"--distill {self.path}: the cache is unfinished ({h.get('epochs_done')} of {h.get('epochs')} "
                             "epochs); re-run the same `archsearch teacher` command to complete it")
        try:
            self.records = np.load(self.path / RECORDS, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CacheError(f"--distill {self.path}: unreadable {RECORDS} ({exc})") from None
        expected = (h["epochs"], h["dataset"]["train_size"])
        if self.records.dtype != record_dtype(h["topk"]) or self.records.shape != expected:
            raise CacheError(f"--distill {self.path}: {RECORDS} holds {self.records.shape} records of {self.records.dtype}, "
                             f"the header says {expected} of {record_dtype(h['topk'])}")
        self.num_classes, self.topk = int(h["num_classes"]), int(h["topk"])

    @property
    def id(self) -> str:
        """16 hex digits identifying the cache's contents (teacher, dataset, K, epochs, augmentation, seed)."""
        return str(self.header["id"])

    @property
    def epochs(self) -> int:
        return int(self.header["epochs"])

    def check(self, data: ImageData, *, epochs: int, augment: bool) -> None:
        """Checks that a student trained on ``data`` for ``epochs`` with(out) augmentation can use the cache.

        Raises:
            CacheError: Another dataset or split, other classes, other augmentation, too many epochs.
        """
        h, info, where = self.header, data.info, f"--distill {self.path}"
        d = h["dataset"]
        if d["name"] != info.name:
            raise CacheError(f"{where}: made for dataset {d['name']!r}, the students train on {info.name!r}")
        if d["train_size"] != len(data.train):
            raise CacheError(f"{where}: made for {d['train_size']} training images of {info.name}, the split has {len(data.train)}")
        if h["num_classes"] != info.num_classes:
            raise CacheError(f"{where}: made for {h['num_classes']} classes, {info.name} has {info.num_classes}")
        if d["resolution"] != info.resolution:
            raise CacheError(f"{where}: made from {d['resolution']} px stored images, the students read {info.resolution} px "
                             "(image folders are decoded at the spec's resolution: use the teacher's)")
        if d["fingerprint"] != dataset_fingerprint(data.train):
            raise CacheError(f"{where}: made for another training split of {info.name} (fingerprint {d['fingerprint']}); "
                             f"the teacher ran with --seed {h['seed']}: validate with the same --seed")
        aug = h["augmentation"]
        want = _augmentation(data, augment)
        if aug.get("replay") != REPLAY:
            raise CacheError(f"{where}: augmentation replay {aug.get('replay')!r}, this archsearch replays {REPLAY!r}")
        if (aug["enabled"], aug["pad"], aug["flip"]) != (want["enabled"], want["pad"], want["flip"]):
            raise CacheError(f"{where}: cached augmentation (pad {aug['pad']}, flip {aug['flip']}) differs from the recipe's "
                             f"(pad {want['pad']}, flip {want['flip']}; recipe augment={augment})")
        if epochs > h["epochs"]:
            raise CacheError(f"{where}: holds {h['epochs']} epochs, the students train {epochs}; make a cache with "
                             f"--epochs {epochs} or validate with --epochs {h['epochs']}")

    def __call__(self, epoch: int, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The stored augmentation seeds and rebuilt soft labels of ``indices`` in ``epoch`` (from 0)."""
        if not 0 <= epoch < self.epochs:
            raise CacheError(f"--distill {self.path}: epoch {epoch + 1} asked, the cache holds {self.epochs}")
        rec = self.records[epoch][np.asarray(indices, dtype=np.int64)]
        soft = rebuild_soft_labels(torch.from_numpy(rec["prob"]), torch.from_numpy(rec["index"]), self.num_classes)
        return torch.from_numpy(rec["seed"].astype(np.int64)), soft


class OnlineTeacher:
    """The reference a cache replaces: the teacher's forward pass on each batch, during training.

    Same seeds (:func:`epoch_seeds`) and the same sparse top-K soft labels as a cache made with
    ``seed`` and ``topk``, computed every step (``topk=None``: the full softmax). Used by the
    distillation benchmark and the tests.
    """

    def __init__(self, teacher: nn.Module, data: ImageData, *, seed: int, topk: int | None, device: torch.device,
                 augment: bool = True) -> None:
        self.teacher, self.data, self.seed, self.topk, self.device = teacher.to(device).eval(), data, seed, topk, device
        channels, side = teacher.pretrained_cfg["input_size"][0], teacher.pretrained_cfg["input_size"][-1]
        self.transform = BatchTransform(data.info, channels=channels, resolution=side, device=device)
        self.augment = augment and bool(data.info.pad or data.info.flip)
        self._seeds: dict[int, np.ndarray] = {}

    def __call__(self, epoch: int, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if epoch not in self._seeds:
            self._seeds = {epoch: epoch_seeds(self.seed, epoch, len(self.data.train))}
        idx = np.asarray(indices, dtype=np.int64)
        seeds = self._seeds[epoch][idx]
        images, _ = next(iter(self.data.train.batches(idx.tolist(), len(idx))))
        x = self.transform(images, train=self.augment, seeds=seeds)
        with torch.no_grad():
            probs = self.teacher(x).float().softmax(1)
        if self.topk is not None and self.topk < probs.shape[1]:
            values, index = probs.topk(self.topk, dim=1)
            probs = rebuild_soft_labels(values.half(), index, probs.shape[1])
        return torch.from_numpy(seeds.astype(np.int64)), probs
