"""NViT pruning (archsearch.train.prune, `archsearch prune`): gate derivatives, gated = physically pruned,
costs, targets, and an end-to-end prune of a tiny timm ViT on digits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _train_helpers import one_thread
from archsearch.models.measure import count_macs, count_params
from archsearch.models.vit import ArchsearchViT
from archsearch.cost.latency import LatencyModel
from archsearch.cost.vit import vit_macs, vit_params
from archsearch.errors import SpecError
from archsearch.space import load_spec
from archsearch.space.budget import Budget
from archsearch.space.vit import ViTBlockSpec, ViTSpec
from archsearch.train.prune import STRUCTURES, GatedViT, PruneConfig, prune_schedule, smallest_spec

GROUPS = (4, 1, 2, 2, 8)


def tiny_spec() -> ViTSpec:
    return ViTSpec(24, (ViTBlockSpec(4, 6, 4, 40), ViTBlockSpec(3, 8, 6, 32)), patch_size=4, resolution=12,
                   in_channels=1, num_classes=5, name="tiny")


def tiny_model(dtype: torch.dtype = torch.float32) -> ArchsearchViT:
    torch.manual_seed(0)
    model = ArchsearchViT(tiny_spec())
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)  # non-trivial LayerNorm affines, biases and tokens
    return model.to(dtype).eval()


# -- the attention scale in the spec ---------------------------------------------------------------

def test_block_scale_round_trips_is_honoured_and_absent_by_default() -> None:
    plain = tiny_spec()
    assert "scale" not in json.dumps(plain.to_dict())  # existing specs serialise as before
    scaled = plain.replace(blocks=(ViTBlockSpec(4, 6, 4, 40, scale=0.125), plain.blocks[1]))
    back = ViTSpec.from_json(scaled.to_json())
    assert back == scaled and back.blocks[0].scale == 0.125 and back.blocks[1].scale is None
    model = ArchsearchViT(scaled)
    assert model.blocks[0].attn.scale == 0.125 and model.blocks[1].attn.scale == 8 ** -0.5
    assert vit_params(scaled, with_head=True) == vit_params(plain, with_head=True)
    title, columns, rows = scaled.layout()
    assert columns[-1] == "scale" and rows[0][-1] == "0.125"


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "0.1", 1e4])
def test_block_scale_rejects_bad_values(bad: object) -> None:
    with pytest.raises(SpecError, match=r"vit\.block\.scale: expected null or a number in \(0, 1000\]"):
        ViTBlockSpec(2, 8, 8, 16, scale=bad)  # type: ignore[arg-type]


# -- saliency = squared gate derivative ------------------------------------------------------------

@pytest.mark.parametrize("criterion_zeroed", [False, True])
def test_hessian_saliency_equals_the_squared_derivative_by_an_explicit_gate(criterion_zeroed: bool) -> None:
    one_thread()
    model = tiny_model(torch.float64)
    gated = GatedViT(model, GROUPS)
    if criterion_zeroed:  # some groups already removed: the others' saliency still equals their gate's
        gated.gates["heads"][0][1] = 0.0
        gated.gates["embed"][0][2] = 0.0
        gated.gates["mlp"][1][0] = 0.0
    for s in STRUCTURES:
        for g in gated.gates[s]:
            g.requires_grad_(True)
    x = torch.randn(4, 1, 12, 12, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    torch.nn.functional.cross_entropy(gated(x), y).backward()
    norms = (12.0, 12.0, 2.0, 2.0, 1.0)
    sal = gated.saliency("hessian", norms)
    checked = 0
    for s, c in zip(STRUCTURES, norms):
        for gate, got in zip(gated.gates[s], sal[s]):
            active = gate.detach() != 0
            want = (gate.grad / c) ** 2
            assert torch.allclose(got[active], want[active], rtol=1e-9, atol=1e-15), s
            assert (want[active] > 0).any(), s  # the loss depends on every structure
            checked += int(active.sum())
    assert checked == sum(int((g != 0).sum()) for s in STRUCTURES for g in gated.gates[s])


def test_magnitude_is_the_normalised_group_norm() -> None:
    model = tiny_model()
    gated = GatedViT(model, GROUPS)
    sal = gated.saliency("magnitude", (1, 1, 1, 1, 1))
    w1 = model.blocks[1].mlp.fc1.weight
    want = (w1[:8].square().sum() + model.blocks[1].mlp.fc1.bias[:8].square().sum()
            + model.blocks[1].mlp.fc2.weight[:, :8].square().sum())
    assert torch.allclose(sal["mlp"][1][0], want, rtol=1e-5)


# -- gated model with zero gates = physically pruned model ------------------------------------------

@pytest.mark.parametrize("structure", STRUCTURES)
def test_gated_equals_physically_pruned_and_costs_equal_the_cost_model(structure: str) -> None:
    one_thread()
    model = tiny_model()
    gated = GatedViT(model, GROUPS)
    for layer, gates in enumerate(gated.gates[structure]):
        gates[0] = 0.0
        if len(gates) > 2:
            gates[-1] = 0.0
    pruned = gated.physical().eval()
    spec = pruned.spec
    assert spec == gated.pruned_spec() and spec != model.spec
    # QK pruning keeps the dense attention scale
    assert [b.scale for b in spec.blocks] == [6 ** -0.5, 8 ** -0.5]
    x = torch.randn(3, 1, 12, 12)
    with torch.no_grad():
        assert torch.allclose(gated(x), pruned(x), atol=1e-5, rtol=0)
        assert not torch.allclose(gated(x), model(x), atol=1e-3)  # the gates did remove something
    assert count_params(pruned) == vit_params(spec, with_head=True)
    assert count_macs(pruned, spec.resolution, in_channels=1) == vit_macs(spec, with_head=True)
    again = ArchsearchViT(load_spec(spec.to_json()))
    again.load_state_dict(pruned.state_dict())
    with torch.no_grad():
        assert torch.allclose(again.eval()(x), pruned(x), atol=1e-6)


# -- the schedule meets the target, never exceeding it -----------------------------------------------

@pytest.mark.parametrize("frac,key", [(0.5, "macs"), (0.71, "params"), (0.33, "macs")])
def test_schedule_meets_the_target_without_exceeding_it(frac: float, key: str) -> None:
    model = tiny_model()
    gated = GatedViT(model, GROUPS)
    dense = {"macs": vit_macs(model.spec, with_head=True), "params": vit_params(model.spec, with_head=True)}
    target = int(frac * dense[key])
    torch.manual_seed(1)
    scores = {s: [torch.rand(len(g)) for g in gated.gates[s]] for s in STRUCTURES}
    removed = prune_schedule(gated, scores, {key: target}, eta=0.0, latency=None)
    spec = gated.pruned_spec()
    cost = (vit_macs if key == "macs" else vit_params)(spec, with_head=True)
    assert cost <= target
    # the last removal was needed: without it the target was not met
    s, i, g = removed[-1]
    with torch.no_grad():
        gated.gates[s][i][g] = 1.0
    assert (vit_macs if key == "macs" else vit_params)(gated.pruned_spec(), with_head=True) > target
    assert all(len(g.nonzero()) >= 1 for s in STRUCTURES for g in gated.gates[s])


def test_unreachable_target_is_stated() -> None:
    from archsearch.train.prune import prune_vit

    model = tiny_model()
    floor = vit_macs(smallest_spec(GatedViT(model, GROUPS)), with_head=True)
    with pytest.raises(SpecError, match=r"unreachable.*smallest model.*macs="):
        prune_vit(model, None, Budget(macs=floor - 1), config=PruneConfig(groups=GROUPS))


@pytest.mark.parametrize("field,value", [("criterion", "random"), ("groups", (16, 2, 8, 8)), ("every", 0), ("ema", 1.0)])
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(SpecError, match=rf"prune\.{field}: expected"):
        PruneConfig(**{field: value})  # type: ignore[arg-type]


def _fake_vit_latency(space: str) -> LatencyModel:
    coefs = {"patch_embed": (0.02, 0.0, 0.01, 0.0, 0.05, 0.0), "vit_block": (0.05, 0.004, 0.02, 0.0, 0.3, 0.01),
             "vit_head": (0.01, 0.5, 0.0, 0.0, 0.1, 0.0)}
    return LatencyModel(space, "cpu", "test cpu", "0", 1, 1, 16, coefs, {u: {"n": 4.0} for u in coefs})


def test_schedule_meets_a_calibrated_latency_target() -> None:
    from archsearch.cost.latency import predict_latency

    model = tiny_model()
    lat = _fake_vit_latency("x")
    predict = lambda spec: predict_latency(spec, lat)  # noqa: E731
    gated = GatedViT(model, GROUPS)
    target = 0.5 * (predict(model.spec) + predict(smallest_spec(gated)))
    torch.manual_seed(2)
    scores = {s: [torch.rand(len(g)) for g in gated.gates[s]] for s in STRUCTURES}
    removed = prune_schedule(gated, scores, {"latency": target}, eta=1e-3, latency=predict)
    assert predict(gated.pruned_spec()) <= target
    s, i, g = removed[-1]
    with torch.no_grad():
        gated.gates[s][i][g] = 1.0
    assert predict(gated.pruned_spec()) > target


def test_latency_aware_ranking_prefers_the_group_that_saves_most_latency() -> None:
    """Equal saliencies: with eta > 0 the first group removed is one whose removal cuts the most latency."""
    from archsearch.cost.latency import predict_latency

    lat = _fake_vit_latency("x")
    predict = lambda spec: predict_latency(spec, lat)  # noqa: E731
    gated = GatedViT(tiny_model(), GROUPS)
    scores = {s: [torch.zeros(len(g)) for g in gated.gates[s]] for s in STRUCTURES}
    base = predict(gated.pruned_spec())
    drops = {}
    for s in STRUCTURES:
        for i, gates in enumerate(gated.gates[s]):
            for gi in range(len(gates)):
                if len(gates) > 1:
                    with torch.no_grad():
                        gates[gi] = 0.0
                    drops[(s, i, gi)] = base - predict(gated.pruned_spec())
                    with torch.no_grad():
                        gates[gi] = 1.0
    first = prune_schedule(gated, scores, {"latency": base - 1e-9}, eta=1.0, latency=predict)[0]
    assert drops[first] == pytest.approx(max(drops.values()))


# -- the command, end to end -----------------------------------------------------------------------

TINY = ["--model", "timm:vit_tiny_patch16_224", "--model-kwargs",
        '{"img_size": 16, "patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 4, "in_chans": 1}',
        "--dataset", "digits", "--groups", "emb=8,heads=1,qk=2,v=2,mlp=16", "--every", "4", "--steps", "3",
        "--epochs", "1", "--max-batches", "8", "--threads", "1", "--device", "cpu", "--prune-lr", "1e-3"]


@pytest.mark.parametrize("calibrated", [False, True], ids=["gmacs-proxy", "calibrated"])
def test_prune_command_end_to_end_on_digits(tmp_path: Path, capsys: pytest.CaptureFixture[str], calibrated: bool) -> None:
    import timm

    from archsearch.cli.main import main
    from archsearch.train.prune import dense_from_timm

    one_thread()
    kwargs = json.loads(TINY[3])
    torch.manual_seed(3)
    src = timm.create_model("vit_tiny_patch16_224", num_classes=10, **kwargs)
    torch.save(src.state_dict(), tmp_path / "dense.pth")
    dense_macs = vit_macs(dense_from_timm(src).spec, with_head=True)
    target = dense_macs // 2
    out = tmp_path / "run"
    extra = []
    if calibrated:
        from archsearch.cost.latency import latency_model_path, predict_latency

        lat = _fake_vit_latency("nvit")
        lat.save(latency_model_path("nvit"))
        extra = ["--latency-space", "nvit"]
    code = main(["prune", *TINY, "--checkpoint", str(tmp_path / "dense.pth"), "--budget", f"macs={target}",
                 "--out", str(out), "--format", "json", *extra])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    res = json.loads(stdout)
    assert not res["dense_trained_here"] and res["before"]["macs"] == dense_macs
    assert res["after"]["macs"] <= target and res["targets_met"]
    if calibrated:
        assert res["latency_model"].startswith("calibrated: space nvit")
        assert res["after"]["predicted_latency_ms"] == pytest.approx(predict_latency(load_spec(str(out / "pruned.json")), lat))
    else:
        assert res["latency_model"].startswith("gmacs-proxy")
    assert {"top1", "latency_ms", "params"} <= set(res["before"]) and {"top1", "latency_ms", "params"} <= set(res["after"])
    assert len(res["blocks"]) == 2 and len(res["events"]) == 3
    spec = load_spec(str(out / "pruned.json"))
    assert vit_macs(spec, with_head=True) == res["after"]["macs"]
    assert all(b.scale == 8 ** -0.5 for b in spec.blocks)
    model = ArchsearchViT(spec)
    model.load_state_dict(torch.load(out / "pruned.pt", weights_only=True))
    assert (out / "redistribution.png").stat().st_size > 1000 and (out / "redistribution.svg").is_file()
    assert main(["show", str(out / "pruned.json"), "--verify"]) == 0
    capsys.readouterr()
    assert main(["results", str(out), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["macs"] == res["after"]["macs"] and rows[0]["top1"] == res["after"]["top1"]


@pytest.mark.parametrize("argv,message", [
    (["--model", "vit_tiny_patch16_224"], "--model: expected timm:NAME"),
    (["--model", "timm:no_such_vit"], "not a timm model"),
    (["--model", "timm:vit_tiny_patch16_224", "--model-kwargs", "{bad"], "--model-kwargs: not valid JSON"),
    (["--model", "timm:vit_tiny_patch16_224", "--groups", "emb=0"], "--groups: expected KEY=N"),
    (["--model", "timm:vit_tiny_patch16_224", "--budget", "memory=1M"], "memory is not a pruning target"),
    (["--model", "timm:resnet18", "--model-kwargs", '{"in_chans": 1}'], "expected a timm VisionTransformer"),
    (["--model", "timm:vit_tiny_patch16_224", "--checkpoint", "/nonexistent.pth"], "--checkpoint: no such file"),
    (["--model", "timm:vit_tiny_patch16_224", "--budget", "macs=1K"], "unreachable"),
    (["--model", "timm:vit_tiny_patch16_224", "--latency-space", "nvit"], "archsearch calibrate --space nvit"),
])
def test_prune_command_bad_input_is_one_line_exit_2(argv: list[str], message: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from archsearch.cli.main import main

    args = ["prune", "--budget", "macs=100K", "--dataset", "digits", "--out", str(tmp_path / "o"), "--device", "cpu",
            "--model-kwargs", TINY[3]]
    code = main(args + argv)
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
