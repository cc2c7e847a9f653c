"""The trainer on a CUDA device: AMP (bf16, fp16) with channels-last, torch.compile, the timm pipeline in
loader workers with EMA, and exact resumption under deterministic kernels. Marked ``gpu`` (outside the
default run); ``benchmarks/gpu_check.sh`` runs them on a GPU machine. On a CPU they skip, saying why."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from archsearch.models import build_model
from archsearch.space import CNNSpec, StageSpec, StemSpec
from archsearch.space.vit import ViTBlockSpec, ViTSpec
from archsearch.train import TrainProgress, get_recipe, train
from archsearch.train.factories import model_kwargs

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False): "
                                          "run benchmarks/gpu_check.sh on a GPU machine")]

CNN = CNNSpec(stem=StemSpec(out_channels=16, kernel=3, stride=2),
              stages=(StageSpec("k1kxk1", 16, 32, bottleneck=16, kernel=3, stride=2, depth=2),
                      StageSpec("k1kxk1", 32, 64, bottleneck=16, kernel=5, stride=2, depth=2)),
              resolution=64, num_classes=10, name="gpu-cnn")
VIT = ViTSpec(96, tuple(ViTBlockSpec(3, 32, 32, 192) for _ in range(3)), patch_size=8, resolution=64, num_classes=10,
              name="gpu-vit")


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from gpu_check import synthetic

    return synthetic(1024, 256, 32)


def _model(spec, **kwargs):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return build_model(spec, num_classes=10, **kwargs)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_and_channels_last_train_without_nans(amp: str, data) -> None:  # type: ignore[no-untyped-def]
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    model = _model(CNN)
    recipe = get_recipe("quick").replace(epochs=3, batch_size=64, lr=3e-3)
    result = train(model, data, recipe, device="cuda", amp=amp, latency=True)
    losses = [h.train_loss for h in result.history]
    assert result.amp == amp and result.device.startswith("cuda") and all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0] and result.top1 > 0.3  # chance is 0.1
    assert model.stem.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert result.peak_memory_bytes > 0 and result.latency_ms is not None and result.images_per_s > 0


def test_compile_trains(data) -> None:  # type: ignore[no-untyped-def]
    result = train(_model(CNN), data, get_recipe("quick").replace(epochs=2, batch_size=64), device="cuda", amp="auto",
                   compile=True, latency=False, max_batches=8)
    assert all(math.isfinite(h.train_loss) for h in result.history) and result.steps == 16


def test_timm_pipeline_in_workers_with_ema(data) -> None:  # type: ignore[no-untyped-def]
    deit = get_recipe("deit").for_epochs(3).replace(batch_size=64, lr_base_size=0, lr=1e-3)
    result = train(_model(VIT, drop_path_rate=deit.drop_path_rate), data, deit, device="cuda", amp="auto", workers=4,
                   latency=False)
    assert all(math.isfinite(h.train_loss) for h in result.history) and result.ema_top1 is not None
    assert result.history[-1].train_loss < result.history[0].train_loss


class Stop(Exception):
    pass


@pytest.mark.parametrize("which", ["batch-cnn", "timm-vit"])
def test_resume_inside_an_epoch_is_exact_on_cuda(which: str, data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if which == "batch-cnn":
        spec, recipe = CNN, get_recipe("quick").replace(epochs=2, batch_size=64, ema_decay=0.9, mixup=0.2)
    else:
        spec, recipe = VIT, get_recipe("deit").for_epochs(2).replace(batch_size=64, lr_base_size=0, lr=1e-3)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        kw = dict(device="cuda", amp="auto", seed=2, max_batches=6, latency=False, workers=2)
        straight = _model(spec, **model_kwargs(recipe, spec.family))  # the ViT with drop path (the CUDA RNG's state)
        train(straight, data, recipe, **kw)

        def stop(p: TrainProgress) -> None:
            if p.kind == "batch" and p.epoch == 2 and p.batch == 5:
                raise Stop

        with pytest.raises(Stop):
            train(_model(spec, **model_kwargs(recipe, spec.family)), data, recipe, checkpoint=tmp_path / "c.pt", key="k",
                  checkpoint_every=2, on_progress=stop, **kw)
        resumed = _model(spec, **model_kwargs(recipe, spec.family))
        assert train(resumed, data, recipe, checkpoint=tmp_path / "c.pt", key="k", **kw).resumed_from == 1
        for name, value in straight.state_dict().items():
            assert torch.equal(value, resumed.state_dict()[name]), name
    finally:
        torch.use_deterministic_algorithms(False)
