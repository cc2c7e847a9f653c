"""The trainer with timm's components: exact resumption from a mid-epoch checkpoint with every state
(optimiser, scheduler, EMA, scaler, sampler, feed and RNGs), the timm pipeline's per-image seeds, progress
reports, image folders read by timm's create_dataset, and what distillation refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from _train_helpers import Stop, one_thread, seeded_tiny_model, tiny_spec
from archsearch.errors import SpecError
from archsearch.models import build_model
from archsearch.train import TrainProgress, get_dataset, get_recipe, train

# every state a checkpoint must carry: AdamW moments, a per-step cosine with warm-up, Mixup/CutMix (NumPy's
# RNG), RandAugment and random erasing (per-image seeds), EMA, gradient clipping, layer decay
TIMM = get_recipe("quick").replace(
    epochs=2, batch_size=16, warmup_epochs=0.5, pipeline="timm", auto_augment="rand-m9-mstd0.5-inc1", re_prob=0.25,
    mixup=0.8, cutmix=1.0, label_smoothing=0.1, ema_decay=0.9, clip_grad=1.0, layer_decay=0.8, interpolation="bilinear")
BATCH = get_recipe("quick").replace(epochs=2, batch_size=16, warmup_epochs=0.5, mixup=0.2, ema_decay=0.9,
                                    label_smoothing=0.1)


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    return get_dataset("digits", seed=0)


_model = seeded_tiny_model


@pytest.mark.parametrize("recipe", [TIMM, BATCH], ids=["timm", "batch"])
def test_resume_inside_an_epoch_gives_the_uninterrupted_weights(recipe, digits,  # type: ignore[no-untyped-def]
                                                                 tmp_path: Path) -> None:
    one_thread()
    kw = dict(device="cpu", seed=3, max_batches=5, latency=False, workers=0)
    straight = _model()
    full = train(straight, digits, recipe, checkpoint=tmp_path / "full.pt", key="f", **kw)

    def stop_in_epoch_two(p: TrainProgress) -> None:
        if p.kind == "batch" and p.epoch == 2 and p.batch == 3:
            raise Stop

    ckpt = tmp_path / "c.pt"
    with pytest.raises(Stop):
        train(_model(), digits, recipe, checkpoint=ckpt, key="a", checkpoint_every=2, on_progress=stop_in_epoch_two, **kw)
    saved = torch.load(ckpt, weights_only=True)
    assert saved["sampler"]["epoch"] == 1 and saved["sampler"]["step"] == 2 and saved["sampler"]["global_step"] == 7
    assert saved["ema"] is not None and saved["ranks"][0]["acc"]["steps"] == 2
    resumed_model = _model(seed=99)  # other initial weights: the checkpoint must overwrite them
    resumed = train(resumed_model, digits, recipe, checkpoint=ckpt, key="a", **kw)
    assert resumed.resumed_from == 1 and len(resumed.history) == 2
    for a, b in zip(straight.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)
    ema_full, ema_resumed = (torch.load(p, weights_only=True)["ema"] for p in (tmp_path / "full.pt", ckpt))
    for name, value in ema_full.items():
        assert torch.equal(value, ema_resumed[name]), name
    assert [h.train_loss for h in resumed.history] == [h.train_loss for h in full.history]
    assert resumed.top1 == full.top1 and resumed.ema_top1 == full.ema_top1 is not None


def test_timm_pipeline_augments_alike_with_any_number_of_workers(digits) -> None:  # type: ignore[no-untyped-def]
    one_thread()
    recipe = TIMM.replace(epochs=1)  # Mixup/CutMix draw in the training process: unaffected by where images are transformed
    runs = []
    for workers in (0, 2):
        model = _model()
        train(model, digits, recipe, device="cpu", seed=1, max_batches=3, latency=False, workers=workers)
        runs.append(model.state_dict())
    for name, value in runs[0].items():
        assert torch.equal(value, runs[1][name]), name


def test_timm_pipeline_learns_and_reports_the_ema(digits) -> None:  # type: ignore[no-untyped-def]
    one_thread()
    recipe = get_recipe("quick").replace(epochs=3, batch_size=32, lr=1e-2, pipeline="timm", scale=(0.6, 1.0),
                                         interpolation="bilinear", ema_decay=0.9)
    result = train(_model(), digits, recipe, device="cpu", latency=False, max_batches=20, workers=0)
    assert result.top1 > 0.25 and 0 <= result.ema_top1 <= 1  # chance is 0.1
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.metrics()["ema_top1"] == result.ema_top1 and result.lr == recipe.lr and result.steps == 60


def test_progress_reports_every_batch_and_epoch(digits) -> None:  # type: ignore[no-untyped-def]
    one_thread()
    seen: list[TrainProgress] = []
    train(_model(), digits, get_recipe("quick").replace(epochs=2, batch_size=32), device="cpu", max_batches=4,
          latency=False, on_progress=seen.append, progress_every=2)
    assert [(p.kind, p.epoch, p.batch) for p in seen] == [
        ("batch", 1, 2), ("batch", 1, 4), ("epoch", 1, 4), ("batch", 2, 2), ("batch", 2, 4), ("epoch", 2, 4)]
    assert [p.step for p in seen] == [2, 4, 4, 6, 8, 8] and all(p.steps == 8 and p.batches == 4 and p.epochs == 2 for p in seen)
    assert seen[-1].fraction == 1.0 and seen[-1].eta_s == 0.0 and seen[1].eta_s > 0
    assert all(p.loss > 0 and 0 <= p.accuracy <= 1 and p.images_per_s > 0 for p in seen)
    assert seen[0].lr > seen[-1].lr == 0.0  # the cosine ends at the floor
    epochs = [p for p in seen if p.kind == "epoch"]
    assert [p.record.epoch for p in epochs] == [1, 2] and epochs[0].loss == pytest.approx(epochs[0].record.train_loss)
    assert seen[0].record is None and seen[0].to_dict()["record"] is None and epochs[0].to_dict()["record"]["epoch"] == 1
    with pytest.raises(SpecError, match="progress_every: expected an integer >= 1"):
        train(_model(), digits, get_recipe("quick"), device="cpu", progress_every=0)


def _folder(root: Path, classes: int = 3, per_class: int = 6) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", 2)):
        for c in range(classes):
            d = root / split / f"class{c}"
            d.mkdir(parents=True)
            for i in range(n):
                noise = rng.integers(0, 30, (20 + i, 24, 3), dtype=np.uint8)
                pixels = np.full((20 + i, 24, 3), 40 + 80 * c, dtype=np.uint8) + noise
                Image.fromarray(pixels).save(d / f"{i}.jpg")
    return root


def test_imagefolder_through_timm_transforms_trains(tmp_path: Path) -> None:
    one_thread()
    data = get_dataset(f"imagefolder:{_folder(tmp_path)}", resolution=16, workers=0)
    assert data.info.num_classes == 3 and (len(data.train), len(data.test)) == (18, 6)
    img, label = data.train.image(0)
    assert img.mode == "RGB" and img.size == (24, 20) and label == 0  # decoded, not resized: the crops are timm's
    assert len(data.train.samples) == 18 and data.train.samples[0][0].endswith(".jpg")
    torch.manual_seed(0)
    model = build_model(tiny_spec(), num_classes=3)
    recipe = get_recipe("deit").for_epochs(2).replace(batch_size=6, lr=1e-3, lr_base_size=0, aug_repeats=0, ema_decay=0.5,
                                        drop_path_rate=0.0)
    result = train(model, data, recipe, device="cpu", latency=False)
    assert len(result.history) == 2 and 0 <= result.top1 <= 1 and result.ema_top1 is not None
    assert result.history[-1].images_per_s > 0 and result.steps == 6


def test_repeated_augmentation_shards_each_image_several_times(digits) -> None:  # type: ignore[no-untyped-def]
    from archsearch.train.loaders import epoch_shard

    shard = epoch_shard(600, epoch=0, seed=0, rank=0, world=1, repeats=3)
    assert len(shard) == 512 and len(set(shard)) < len(shard)  # timm's RepeatAugSampler: 256-image rounds
    assert epoch_shard(600, epoch=1, seed=0, rank=0, world=1, repeats=3) != shard
    assert epoch_shard(600, epoch=0, seed=1, rank=0, world=1, repeats=3) != shard
    assert sorted(epoch_shard(10, epoch=0, seed=0, rank=0, world=1)) == list(range(10))
    one_thread()
    result = train(_model(), digits, TIMM.replace(epochs=1, aug_repeats=3), device="cpu", max_batches=2, latency=False,
                   workers=0)
    assert result.steps == 2


def test_distillation_needs_a_cache_and_a_pipeline_it_can_replay(digits) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError, match="recipe 'tinyvit-distill' trains against a teacher's soft labels"):
        train(_model(), digits, get_recipe("tinyvit-distill"), device="cpu")

    def provider(epoch: int, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(len(indices), dtype=torch.int64), torch.full((len(indices), 10), 0.1)

    with pytest.raises(SpecError, match="--distill: recipe 'deit' uses the timm pipeline"):
        train(_model(), digits, get_recipe("deit"), device="cpu", targets=provider)
    with pytest.raises(SpecError, match="--distill: recipe 'quick' mixes images"):
        train(_model(), digits, get_recipe("quick").replace(cutmix=1.0), device="cpu", targets=provider)
    result = train(_model(), digits, get_recipe("tinyvit-distill").for_epochs(1).replace(batch_size=32), device="cpu",
                   targets=provider, max_batches=2, latency=False)
    assert result.steps == 2 and result.lr == pytest.approx(2.5e-4 * 32 / 512)
