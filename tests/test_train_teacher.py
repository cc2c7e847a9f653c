"""The teacher cache (TinyViT fast distillation): format, exact replay, checks, resume, CLI end to end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _train_helpers import one_thread, tiny_spec, write_run
from archsearch.models import build_model
from archsearch.cli.main import main
from archsearch.errors import SpecError
from archsearch.train import BatchTransform, ImageData, get_dataset, get_recipe, train
from archsearch.train.datasets import replay_augmentation
from archsearch.train.teacher import (
    CacheError, OnlineTeacher, TeacherCache, build_cache, epoch_seeds, load_teacher, rebuild_soft_labels, record_dtype,
)

TOPK = 3


@pytest.fixture(scope="module")
def digits() -> ImageData:
    """Digits with a stronger augmentation than its own: crop padding 2 and horizontal flips on."""
    data = get_dataset("digits", seed=0)
    return ImageData(dataclasses.replace(data.info, pad=2, flip=True), data.train, data.test)


@pytest.fixture(scope="module")
def teacher_files(tmp_path_factory: pytest.TempPathFactory, digits: ImageData) -> tuple[Path, Path]:
    """A spec JSON and the weights of a small teacher trained for 3 epochs (sharp, informative outputs)."""
    one_thread()
    folder = tmp_path_factory.mktemp("teacher")
    spec = tiny_spec(width=32, name="teacher")
    torch.manual_seed(0)
    model = build_model(spec, num_classes=10)
    train(model, digits, get_recipe("quick").replace(epochs=3), device="cpu", latency=False)
    (folder / "teacher.json").write_text(json.dumps(spec.to_dict()))
    torch.save(model.state_dict(), folder / "teacher.pt")
    return folder / "teacher.json", folder / "teacher.pt"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory, digits: ImageData, teacher_files: tuple[Path, Path]) -> Path:
    one_thread()
    spec_path, weights = teacher_files
    teacher, identity = load_teacher(str(spec_path), num_classes=10, checkpoint=weights)
    out = tmp_path_factory.mktemp("cache") / "c"
    build_cache(teacher=teacher, identity=identity, data=digits, out=out, epochs=2, topk=TOPK, seed=7, device="cpu",
                batch_size=500)
    return out


def test_format_header_and_record_size(cache: Path, digits: ImageData) -> None:
    header = json.loads((cache / "header.json").read_text())
    n = len(digits.train)
    assert header["format"] == "archsearch-teacher-cache" and header["complete"] is True
    assert header["record_bytes"] == 4 * TOPK + 4 == record_dtype(TOPK).itemsize
    assert header["dataset"]["name"] == "digits" and header["dataset"]["train_size"] == n
    assert header["epochs"] == 2 and header["topk"] == TOPK and header["num_classes"] == 10 and header["seed"] == 7
    assert header["augmentation"] == {"enabled": True, "pad": 2, "flip": True, "replay": "lowbias32-crop-flip-v1"}
    assert header["teacher"]["weights"] == "checkpoint" and header["teacher"]["macs"] > 0
    records = np.load(cache / "records.npy", mmap_mode="r")
    assert isinstance(records, np.memmap) and records.shape == (2, n) and records.dtype == record_dtype(TOPK)
    payload = 2 * n * (4 * TOPK + 4)
    assert payload <= (cache / "records.npy").stat().st_size <= payload + 4096  # the .npy header is small
    for epoch in range(2):
        assert np.array_equal(records[epoch]["seed"], epoch_seeds(7, epoch, n))
    assert not np.array_equal(records[0]["seed"], records[1]["seed"])  # each epoch its own views
    probs = records["prob"].astype(np.float32)
    assert np.all(np.diff(probs, axis=-1) <= 0) and np.all(probs.sum(-1) <= 1.002)
    assert records["index"].min() >= 0 and records["index"].max() < 10


def test_replay_augmentation_depends_on_the_seed_alone() -> None:
    seeds = np.arange(-5000, 5000, dtype=np.int32)
    oy, ox, flip = replay_augmentation(seeds, pad=2, flip=True)
    assert set(oy.tolist()) == set(ox.tolist()) == {0, 1, 2, 3, 4} and 0.45 < flip.mean() < 0.55
    again = replay_augmentation(seeds[::-1].copy(), pad=2, flip=True)
    assert all(np.array_equal(a[::-1], b) for a, b in zip(again, (oy, ox, flip)))  # batch order does not matter
    assert not replay_augmentation(seeds, pad=2, flip=False)[2].any()
    assert not replay_augmentation(seeds, pad=0, flip=True)[0].any()


def test_rebuilt_soft_labels_equal_the_teacher_on_replayed_images(cache: Path, digits: ImageData,
                                                                  teacher_files: tuple[Path, Path]) -> None:
    one_thread()
    teacher, _ = load_teacher(str(teacher_files[0]), num_classes=10, checkpoint=teacher_files[1])
    reader = TeacherCache(cache)
    transform = BatchTransform(digits.info, channels=3, resolution=16, device=torch.device("cpu"))
    idx = torch.randperm(len(digits.train), generator=torch.Generator().manual_seed(1))[:200]
    images = digits.train.images[idx]

    def teacher_probs(seeds: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            return teacher(transform(images, train=seeds is not None, seeds=seeds)).softmax(1)

    for epoch in range(2):
        seeds, soft = reader(epoch, idx)
        assert soft.shape == (200, 10) and torch.allclose(soft.sum(1), torch.ones(200), atol=2e-3)
        oy, ox, flip = replay_augmentation(seeds, pad=2, flip=True)
        assert len(set(oy.tolist())) == 5 and 0.3 < flip.mean() < 0.7  # crop and flip really vary
        fresh = teacher_probs(seeds)  # a fresh forward on the replayed batch, in another batch composition
        values, index = fresh.topk(TOPK, dim=1)
        rec = reader.records[epoch][idx.numpy()]
        assert np.array_equal(np.sort(rec["index"], 1), np.sort(index.numpy(), 1))
        assert torch.allclose(soft.gather(1, index), values, atol=1e-3, rtol=1e-3)  # float16 storage
        rest = (1 - values.sum(1, keepdim=True)) / (10 - TOPK)
        others = torch.ones(200, 10, dtype=torch.bool).scatter_(1, index, False)
        assert torch.allclose(soft[others].view(200, -1), rest.expand(-1, 10 - TOPK), atol=2e-3)
        wrong = teacher_probs(seeds + 1)
        assert (wrong.gather(1, index) - values).abs().amax(1).gt(1e-2).float().mean() > 0.2
        plain = teacher_probs(None)
        assert (plain.gather(1, index) - values).abs().amax(1).gt(1e-2).float().mean() > 0.2


def test_online_teacher_gives_the_cached_targets(cache: Path, digits: ImageData, teacher_files: tuple[Path, Path]) -> None:
    one_thread()
    teacher, _ = load_teacher(str(teacher_files[0]), num_classes=10, checkpoint=teacher_files[1])
    online = OnlineTeacher(teacher, digits, seed=7, topk=TOPK, device=torch.device("cpu"))
    idx = torch.arange(100, 164)
    seeds, soft = TeacherCache(cache)(1, idx)
    online_seeds, online_soft = online(1, idx)
    assert torch.equal(seeds, online_seeds) and torch.allclose(soft, online_soft, atol=1e-3)


def test_rebuild_soft_labels_known_answer() -> None:
    prob = torch.tensor([[0.5, 0.3], [0.9, 0.1]])
    index = torch.tensor([[2, 0], [1, 3]])
    out = rebuild_soft_labels(prob, index, 4)
    assert torch.allclose(out, torch.tensor([[0.3, 0.1, 0.5, 0.1], [0.0, 0.9, 0.0, 0.1]]))
    full = rebuild_soft_labels(torch.tensor([[0.25, 0.75]]), torch.tensor([[1, 0]]), 2)  # K = C: nothing to spread
    assert torch.equal(full, torch.tensor([[0.75, 0.25]]))


def _other(data: ImageData, **changes: object) -> ImageData:
    return ImageData(dataclasses.replace(data.info, **changes), data.train, data.test)


@pytest.mark.parametrize("case,message", [
    ("dataset", "made for dataset 'digits', the students train on 'other'"),
    ("classes", "made for 10 classes, digits has 12"),
    ("split", "made for another training split of digits"),
    ("size", "made for 1437 training images"),
    ("epochs", "holds 2 epochs, the students train 3"),
    ("augment", "differs from the recipe's"),
    ("pad", "cached augmentation (pad 2, flip True) differs"),
])
def test_cache_mismatch_is_an_error(case: str, message: str, cache: Path, digits: ImageData) -> None:
    reader = TeacherCache(cache)
    data, epochs, augment = digits, 2, True
    if case == "dataset":
        data = _other(digits, name="other")
    elif case == "classes":
        data = _other(digits, num_classes=12)
    elif case == "split":
        other = get_dataset("digits", seed=1)
        data = ImageData(digits.info, other.train, other.test)
    elif case == "size":
        from archsearch.train.datasets import TensorSplit

        data = ImageData(digits.info, TensorSplit(digits.train.images[:100], digits.train.labels[:100]), digits.test)
    elif case == "epochs":
        epochs = 3
    elif case == "augment":
        augment = False
    elif case == "pad":
        data = _other(digits, pad=1)
    with pytest.raises(CacheError, match="^--distill .*" + message.replace("(", r"\(").replace(")", r"\)")):
        reader.check(data, epochs=epochs, augment=augment)
    reader.check(digits, epochs=2, augment=True)  # the matching student passes
    reader.check(digits, epochs=1, augment=True)


def test_bad_cache_settings_and_files(tmp_path: Path, cache: Path, digits: ImageData, teacher_files: tuple[Path, Path]) -> None:
    teacher, identity = load_teacher(str(teacher_files[0]), num_classes=10, checkpoint=teacher_files[1])
    kwargs = dict(teacher=teacher, identity=identity, data=digits, epochs=2, seed=7, device="cpu")
    with pytest.raises(SpecError, match=r"--topk: expected an integer in \[1, 10\]"):
        build_cache(out=tmp_path / "k", topk=11, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(CacheError, match="holds a cache made with other settings \\(topk, record_bytes"):
        build_cache(out=cache, topk=TOPK + 1, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(CacheError, match="not a teacher cache"):
        TeacherCache(tmp_path)
    with pytest.raises(CacheError, match="no teacher weights"):
        load_teacher(str(teacher_files[0]), num_classes=10)
    with pytest.raises(CacheError, match="classifier|shape"):
        load_teacher(str(teacher_files[0]), num_classes=7, checkpoint=teacher_files[1])
    with pytest.raises(SpecError, match="unknown timm model 'no_such_net'"):
        load_teacher("timm:no_such_net", num_classes=10, random_weights=True)


def test_timm_teacher_adapts_classes_and_resolution(tmp_path: Path, digits: ImageData) -> None:
    one_thread()
    teacher, identity = load_teacher("timm:resnet10t", num_classes=10, random_weights=True, resolution=32)
    assert teacher.pretrained_cfg["input_size"] == (3, 32, 32) and identity["weights"] == "random"
    assert teacher(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    torch.save({"model": teacher.state_dict()}, tmp_path / "w.pt")
    again, identity = load_teacher("timm:resnet10t", num_classes=10, checkpoint=tmp_path / "w.pt", resolution=32)
    assert identity["weights"] == "checkpoint" and len(identity["checkpoint_sha256"]) == 16


def test_interrupted_teacher_run_resumes_to_the_same_cache(tmp_path: Path, cache: Path, digits: ImageData,
                                                           teacher_files: tuple[Path, Path]) -> None:
    one_thread()
    teacher, identity = load_teacher(str(teacher_files[0]), num_classes=10, checkpoint=teacher_files[1])
    kwargs = dict(teacher=teacher, identity=identity, data=digits, out=tmp_path / "c", epochs=2, topk=TOPK, seed=7,
                  device="cpu", batch_size=256)
    header = build_cache(stop_after=8, **kwargs)  # type: ignore[arg-type]
    assert not header["complete"] and (header["epochs_done"], header["rows_done"]) == (1, 2 * 256)
    with pytest.raises(CacheError, match="unfinished"):
        TeacherCache(tmp_path / "c")
    garbage = np.load(tmp_path / "c" / "records.npy", mmap_mode="r+")
    garbage[1, 2 * 256:] = np.frombuffer(np.full(garbage[1, 512:].nbytes, 0x55, np.uint8).tobytes(), garbage.dtype)
    garbage.flush()  # rows past the header's progress count as never written
    del garbage
    header = build_cache(**kwargs)  # type: ignore[arg-type]
    assert header["complete"]
    resumed = np.load(tmp_path / "c" / "records.npy")
    assert np.array_equal(resumed, np.load(cache / "records.npy"))  # the uninterrupted cache, byte for byte
    assert build_cache(**kwargs)["complete"]  # type: ignore[arg-type]  # a finished cache is left as it is


def test_trainer_trains_against_a_target_provider(cache: Path, digits: ImageData) -> None:
    one_thread()
    calls: list[tuple[int, int]] = []
    reader = TeacherCache(cache)

    def provider(epoch: int, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append((epoch, len(indices)))
        return reader(epoch, indices)

    model = build_model(tiny_spec(), num_classes=10)
    result = train(model, digits, get_recipe("quick").replace(epochs=2), device="cpu", latency=False, max_batches=3,
                   targets=provider)
    assert calls == [(0, 64)] * 3 + [(1, 64)] * 3 and len(result.history) == 2


SMOKE = ["--device", "cpu", "--threads", "1", "--no-latency"]


def test_teacher_and_validate_distill_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The workflow: validate a teacher, cache it from its checkpoint, validate students against the cache."""
    one_thread()

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    teacher_run = write_run(tmp_path / "teacher", [tiny_spec(width=32, name="teacher")], name="teacher-run")
    code, _, err = run("validate", str(teacher_run), "--epochs", "4", *SMOKE)
    assert code == 0, err
    (ckpt,) = (teacher_run / "checkpoints").glob("*.pt")

    code, _, err = run("teacher", "--model", str(tmp_path / "nothing.json"), "--out", str(tmp_path / "x"), "--threads", "1")
    assert code == 2 and "no such file" in err and err.count("\n") == 1
    cache = tmp_path / "cache"
    code, out, err = run("teacher", "--model", str(ckpt), "--epochs", "2", "--topk", "4", "--out", str(cache),
                         "--device", "cpu", "--threads", "1", "--format", "json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["record_bytes"] == 20 and summary["bytes"] == 2 * 1437 * 20 and summary["epochs"] == 2
    header = json.loads((cache / "header.json").read_text())
    assert header["teacher"]["spec"]["name"] == "teacher" and header["teacher"]["checkpoint"] == str(ckpt)

    students = write_run(tmp_path / "students", [tiny_spec(name="a"), tiny_spec(name="b", width=24)])
    code, out, err = run("validate", str(students), "--distill", str(cache), "--epochs", "2", "--format", "json", *SMOKE)
    assert code == 0, err
    rows = json.loads(out)
    assert {r["distill"] for r in rows} == {summary["id"]} and {r["status"] for r in rows} == {"trained"}
    # a 46 % teacher, two short epochs: well above chance (10 %, sd 1.6 % on 360 images) only if the
    # soft labels belong to the images the student sees (measured: 21.7 %)
    assert max(r["top1"] for r in rows) > 0.16
    code, out, _ = run("validate", str(students), "--distill", str(cache), "--epochs", "2", "--format", "json", *SMOKE)
    assert code == 0 and {r["status"] for r in json.loads(out)} == {"cached"}
    code, out, _ = run("validate", str(students), "--epochs", "2", "--top-k", "1", "--format", "json", *SMOKE)
    plain = json.loads(out)
    assert code == 0 and plain[0]["status"] == "trained" and plain[0]["distill"] is None  # not confused with the distilled
    assert plain[0]["key"] not in {r["key"] for r in rows}
    code, out, _ = run("results", str(students), "--format", "json")
    assert code == 0 and sorted(str(r["distill"]) for r in json.loads(out)) == sorted([summary["id"]] * 2 + ["None"])

    for argv, message in [(["--epochs", "3"], "holds 2 epochs, the students train 3"),
                          (["--epochs", "2", "--seed", "1"], "made for another training split of digits"),
                          (["--epochs", "2", "--distill", str(tmp_path)], "not a teacher cache")]:
        distill = [] if "--distill" in argv else ["--distill", str(cache)]
        code, out, err = run("validate", str(students), *distill, *argv, *SMOKE)
        assert code == 2 and out == "" and message in err and err.count("\n") == 1
