"""DDP on CPU: two gloo processes train one epoch and end with the same weights; `validate_run` under
torchrun's environment records one trial, written by rank 0."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from _train_helpers import tiny_spec, write_run
    from archsearch.models import build_model
    from archsearch.study import validate_run
    from archsearch.train import get_dataset, get_recipe, train

    try:
        torch.manual_seed(0)
        model = build_model(tiny_spec(), num_classes=10)
        recipe = get_recipe("quick").replace(epochs=1, batch_size=32, warmup_epochs=0.0)
        result = train(model, get_dataset("digits"), recipe, device="cpu", max_batches=6,
                       checkpoint=Path(out) / "ckpt.pt", key="ddp", latency=rank == 0)
        torch.save({"state": model.state_dict(), "world": result.world_size, "top1": result.top1,
                    "images": result.images_per_s * result.train_time_s, "backend": dist.get_backend()},
                   Path(out) / f"rank{rank}.pt")
        torch.manual_seed(0)
        timm_model = build_model(tiny_spec(), num_classes=10)
        timm_recipe = recipe.replace(batch_size=16, pipeline="timm", auto_augment="rand-m9-mstd0.5-inc1", mixup=0.8,
                                     cutmix=1.0, ema_decay=0.9, interpolation="bilinear")
        timm_result = train(timm_model, get_dataset("digits"), timm_recipe, device="cpu", max_batches=3, workers=0,
                            checkpoint=Path(out) / "timm.pt", key="timm", checkpoint_every=1, latency=False)
        torch.save({"state": timm_model.state_dict(), "ema_top1": timm_result.ema_top1}, Path(out) / f"timm{rank}.pt")
        run = Path(out) / "run"
        if rank == 0:
            write_run(run, [tiny_spec(name="a")])
        dist.barrier()
        rows = validate_run(run, epochs=1, max_batches=3, device="cpu", latency=False)
        torch.save({"top1": rows[0]["top1"], "status": rows[0]["status"]}, Path(out) / f"validate{rank}.pt")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_two_gloo_ranks_agree_on_the_final_weights(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2 and r0["backend"] == "gloo"
    assert r0["top1"] == r1["top1"]  # the test metrics are all-reduced
    assert round(r0["images"]) == 2 * 6 * 32  # both ranks' shards counted
    for key, value in r0["state"].items():
        assert torch.equal(value, r1["state"][key]), key
    torch.manual_seed(0)
    from _train_helpers import tiny_spec
    from archsearch.models import build_model

    initial = build_model(tiny_spec(), num_classes=10).state_dict()
    assert not torch.equal(initial["stem.conv.weight"], r0["state"]["stem.conv.weight"])  # it did train
    assert torch.load(tmp_path / "ckpt.pt", weights_only=True)["epoch"] == 1
    # the timm pipeline, Mixup/CutMix and EMA under DDP: the ranks agree, each rank's state is checkpointed
    t0, t1 = (torch.load(tmp_path / f"timm{r}.pt", weights_only=True) for r in (0, 1))
    assert t0["ema_top1"] == t1["ema_top1"] is not None
    for key, value in t0["state"].items():
        assert torch.equal(value, t1["state"][key]), key
    timm_ckpt = torch.load(tmp_path / "timm.pt", weights_only=True)
    assert len(timm_ckpt["ranks"]) == 2 and timm_ckpt["sampler"]["world"] == 2 and timm_ckpt["ema"] is not None

    import optuna

    from archsearch.study import default_storage

    v0, v1 = (torch.load(tmp_path / f"validate{r}.pt", weights_only=True) for r in (0, 1))
    assert v0 == v1 and v0["status"] == "trained"
    trials = optuna.load_study(study_name="tiny-run", storage=default_storage(tmp_path / "run")).trials
    assert len(trials) == 1 and trials[0].state.name == "COMPLETE" and trials[0].user_attrs["world_size"] == 2
    assert trials[0].value == v0["top1"]
