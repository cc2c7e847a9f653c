"""The trainer on CPU: metrics, checkpoints readable with weights_only, exact resume, devices, latency."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from _train_helpers import Stop, one_thread, seeded_tiny_model, tiny_spec
from archsearch.models import build_model
from archsearch.errors import SpecError
from archsearch.space import CNNSpec
from archsearch.train import EpochRecord, get_dataset, get_recipe, measure_latency, resolve_device, train

RECIPE = get_recipe("quick").replace(epochs=2, batch_size=32, warmup_epochs=0.5)


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    return get_dataset("digits", seed=0)


_model = seeded_tiny_model


def test_train_records_metrics_and_a_weights_only_checkpoint(digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    one_thread()
    seen: list[EpochRecord] = []
    ckpt = tmp_path / "c.pt"
    result = train(_model(), digits, RECIPE, device="cpu", checkpoint=ckpt, key="k", callbacks=[seen.append],
                   max_batches=4)
    assert [r.epoch for r in seen] == [1, 2] and result.history == tuple(seen)
    assert 0 <= result.top1 <= result.top5 <= 1 and result.test_loss > 0
    assert result.device == "cpu" and result.amp == "off" and result.world_size == 1 and result.resumed_from == 0
    assert result.latency_ms is not None and result.latency_ms > 0
    assert result.images_per_s > 0 and result.train_time_s > 0 and result.peak_memory_bytes > 2**20
    assert result.params == sum(p.numel() for p in build_model(tiny_spec(), num_classes=10).parameters())
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 2 and state["key"] == "k" and len(state["history"]) == 2
    assert {"model", "optimizer", "scheduler", "scaler", "ema", "sampler", "ranks"} <= set(state)
    assert state["sampler"]["epoch"] == 2 and state["sampler"]["step"] == 0 and {"rng", "feed"} <= set(state["ranks"][0])
    assert not (tmp_path / "c.pt.tmp").exists()


def test_learns_digits(digits) -> None:  # type: ignore[no-untyped-def]
    one_thread()
    result = train(_model(), digits, RECIPE.replace(epochs=3, lr=1e-2), device="cpu", latency=False)
    assert result.top1 > 0.6  # chance is 0.1
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_resume_after_an_interrupt_gives_the_same_weights(digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    one_thread()
    recipe = RECIPE.replace(epochs=3)
    straight = _model()
    full = train(straight, digits, recipe, device="cpu", seed=5, max_batches=5, latency=False)

    def stop_after_first(record: EpochRecord) -> None:
        if record.epoch == 1:
            raise Stop

    ckpt = tmp_path / "c.pt"
    with pytest.raises(Stop):
        train(_model(), digits, recipe, device="cpu", seed=5, max_batches=5, checkpoint=ckpt, key="a",
              callbacks=[stop_after_first], latency=False)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1
    epochs: list[int] = []
    resumed_model = _model(seed=99)  # different initial weights: the checkpoint must overwrite them
    resumed = train(resumed_model, digits, recipe, device="cpu", seed=5, max_batches=5, checkpoint=ckpt, key="a",
                    callbacks=[lambda r: epochs.append(r.epoch)], latency=False)
    assert resumed.resumed_from == 1 and epochs == [2, 3] and len(resumed.history) == 3
    assert resumed.top1 == full.top1 and [h.train_loss for h in resumed.history] == [h.train_loss for h in full.history]
    for a, b in zip(straight.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_of_another_key_is_ignored(digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    one_thread()
    ckpt = tmp_path / "c.pt"
    train(_model(), digits, RECIPE.replace(epochs=1), device="cpu", max_batches=2, checkpoint=ckpt, key="a", latency=False,
          progress=True)  # the rich bar runs without a terminal too
    result = train(_model(), digits, RECIPE.replace(epochs=1), device="cpu", max_batches=2, checkpoint=ckpt, key="b",
                   latency=False)
    assert result.resumed_from == 0 and torch.load(ckpt, weights_only=True)["key"] == "b"


def test_devices() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(SpecError, match="--device: expected auto, cpu or cuda"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_without_gpu_is_one_line_error() -> None:
    with pytest.raises(SpecError, match=r"--device cuda: no CUDA device is available") as info:
        resolve_device("cuda")
    assert "\n" not in str(info.value)


def test_measure_latency_is_a_median_of_timed_forwards() -> None:
    one_thread()
    model = build_model(tiny_spec(), num_classes=10).train()
    ms = measure_latency(model, (3, 16, 16), device=torch.device("cpu"), runs=30)
    assert 0 < ms < 1000 and model.training  # mode restored


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False): "
                                                           "run benchmarks/gpu_check.sh on a GPU machine")
def test_cuda_amp_channels_last(digits) -> None:  # type: ignore[no-untyped-def]
    for amp in ("bf16", "fp16"):
        result = train(_model(), digits, RECIPE.replace(epochs=1), device="cuda", amp=amp, max_batches=3)
        assert result.amp == amp and result.device.startswith("cuda") and result.peak_memory_bytes > 0


# The quick recipe's promise, on a real solved candidate: `archsearch solve --space deepmad-cifar
# --budget macs=5M,params=200K` (its best design, 4.84M MACs), digits at 32 px. Timed on ONE thread: on a
# shared machine two OpenMP threads spin against other processes (8x slower measured under load 4),
# and one core bounds what two uncontended cores take.
QUICK_SPEC = {
    "family": "cnn", "stem": {"out_channels": 24, "in_channels": 3, "kernel": 3, "stride": 1},
    "stages": [
        {"block": "k1kxk1", "in_channels": 24, "out_channels": 24, "bottleneck": 8, "kernel": 3, "stride": 1, "depth": 1, "se": False},
        {"block": "k1kxk1", "in_channels": 24, "out_channels": 48, "bottleneck": 8, "kernel": 5, "stride": 2, "depth": 1, "se": False},
        {"block": "k1kxk1", "in_channels": 48, "out_channels": 192, "bottleneck": 16, "kernel": 5, "stride": 2, "depth": 2, "se": False},
    ],
    "resolution": 32, "num_classes": 10, "name": "deepmad-cifar-1",
}


@pytest.mark.train
@pytest.mark.slow
def test_quick_recipe_trains_a_solved_cnn_on_digits_within_a_minute(digits) -> None:  # type: ignore[no-untyped-def]
    from archsearch import cost

    spec = CNNSpec.from_dict(QUICK_SPEC)
    assert cost.macs(spec, with_head=True) <= 20_000_000
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model(spec, num_classes=10)
    t0 = time.perf_counter()
    result = train(model, digits, get_recipe("quick"), device="cpu", latency=False)
    wall = time.perf_counter() - t0
    print(f"quick recipe: top1 {result.top1:.4f}, train {result.train_time_s:.1f} s, wall {wall:.1f} s")
    assert result.top1 > 0.90
    assert wall < 60


def test_eval_every_skips_evaluations_and_changes_no_result(digits) -> None:  # type: ignore[no-untyped-def]
    one_thread()
    recipe = RECIPE.replace(epochs=3)
    every = train(_model(), digits, recipe, device="cpu", max_batches=3, latency=False)
    sparse = train(_model(), digits, recipe, device="cpu", max_batches=3, latency=False, eval_every=2)
    assert [h.top1 != h.top1 for h in sparse.history] == [True, False, False]  # epoch 1 not evaluated; the last always
    assert sparse.top1 == every.top1 and sparse.test_loss == every.test_loss
    assert sparse.history[1].top1 == every.history[1].top1
    with pytest.raises(SpecError, match=r"eval_every: expected an integer >= 1"):
        train(_model(), digits, recipe, device="cpu", eval_every=0)
