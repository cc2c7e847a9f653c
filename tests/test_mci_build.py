"""The MCi module: timm's API, timm-compatible weights, reparameterisation, spec validation."""

from __future__ import annotations

import dataclasses
import json

import pytest
import timm
import torch
from timm.layers import set_fused_attn
from timm.utils.model import reparameterize_model

from archsearch.models import ArchsearchMCi, build_model, count_macs, count_params
from archsearch.cost import mci_macs, mci_params
from archsearch.errors import SpecError
from archsearch.space import MCiSpec, load_spec, mci_template
from tests.test_mci_cost import timm_fastvit

# timm's attention head width is 32; both mixers, CPE, SE on a patch embedding, an odd side
SMALL = MCiSpec(
    dims=(32, 32, 64), depths=(1, 2, 2), token_mixers=("repmixer", "repmixer", "attention"),
    pos_embs=(False, True, True), se_downsamples=(False, True, True), mlp_ratios=(3.0, 2.0, 1.5),
    resolution=35, num_classes=10, name="small",
)


def _randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Random weights, BatchNorm statistics and O(1) layer scales, so every branch matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif name.endswith("gamma"):
                t.copy_(0.5 + 0.5 * torch.rand(t.shape, generator=g))
            else:
                t.copy_(0.2 * torch.randn(t.shape, generator=g))


@pytest.fixture(scope="module")
def pair() -> tuple[torch.nn.Module, ArchsearchMCi]:
    """timm's FastVit of SMALL with random weights, and our module loaded with its state dict."""
    ref = timm_fastvit(SMALL).eval()
    _randomise(ref)
    ours = build_model(SMALL).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


@pytest.mark.parametrize("fused_attn", [False, True])
def test_same_outputs_as_timm(pair, fused_attn: bool) -> None:
    ref, ours = pair
    for m in list(ref.modules()) + list(ours.modules()):
        if hasattr(m, "fused_attn"):
            m.fused_attn = fused_attn
    x = torch.randn(2, 3, 35, 35, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ours.forward_features(x), ref.forward_features(x), rtol=1e-4, atol=1e-5)


def test_reparameterisation_keeps_outputs_and_equals_the_inference_spec(pair) -> None:
    ref, ours = pair
    x = torch.randn(2, 3, 35, 35, generator=torch.Generator().manual_seed(2))
    fused = reparameterize_model(ours)  # timm's walker calls our reparameterize methods (on a copy)
    fused_ref = reparameterize_model(ref)
    with torch.no_grad():
        before = ours(x)
        torch.testing.assert_close(fused(x), before, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(fused(x), fused_ref(x), rtol=1e-4, atol=1e-4)
    inference = dataclasses.replace(SMALL, reparameterized=True)
    assert count_params(fused) == mci_params(inference, with_head=True) < mci_params(SMALL, with_head=True)
    assert count_macs(fused, 35) == mci_macs(inference, with_head=True)
    # the fused weights load into a module built from the inference-form spec, and into timm's
    built = build_model(inference).eval()
    built.load_state_dict(fused.state_dict(), strict=True)
    timm_inference = timm_fastvit(inference).eval()
    timm_inference.load_state_dict(fused.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(built(x), before, rtol=1e-4, atol=1e-4)
    # our own method: in place, and the spec follows
    again = build_model(SMALL).eval()
    again.load_state_dict(ours.state_dict())
    assert again.reparameterize() is again and again.spec == dataclasses.replace(inference)
    with torch.no_grad():
        torch.testing.assert_close(again(x), before, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["mci0"])
@pytest.mark.parametrize("reparameterized", [False, True])
def test_timm_checkpoint_layout(name: str, reparameterized: bool) -> None:
    """A fastvit_mci* state dict (either form) has exactly our keys and shapes."""
    set_fused_attn(False)
    with torch.device("meta"):
        ours = build_model(mci_template(name, reparameterized=reparameterized))
        ref = timm.create_model(f"fastvit_{name}", inference_mode=reparameterized)
    set_fused_attn(True)
    mine = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert mine == theirs


def test_timm_api() -> None:
    spec = dataclasses.replace(SMALL, name="api")
    model = timm.create_model("archsearch_mci", spec=spec.to_json()).eval()
    assert isinstance(model, ArchsearchMCi)
    assert model.pretrained_cfg["input_size"] == (3, 35, 35) and model.pretrained_cfg["pool_size"] == (3, 3)
    assert model.num_features == 128 and model.num_classes == 10
    x = torch.randn(1, 3, 35, 35)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (1, 128, 3, 3)
        assert model.forward_head(feats, pre_logits=True).shape == (1, 128)
        assert model(x).shape == (1, 10)
        model.reset_classifier(0)
        assert model(x).shape == (1, 128) and model.spec.num_classes == 0
    assert count_params(model) == mci_params(spec)
    with torch.device("meta"):
        other = timm.create_model("archsearch_mci", spec=spec, num_classes=3, in_chans=1)
    assert other.spec.in_channels == 1 and count_params(other) == mci_params(other.spec, with_head=True)
    feats = timm.create_model("archsearch_mci", spec=spec, features_only=True)
    assert [f.shape[1] for f in feats(x)] == [32, 32, 64]


def test_timm_entry_point_errors(tiny_cnn_spec) -> None:
    with pytest.raises(SpecError, match="expected spec="):
        timm.create_model("archsearch_mci")
    with pytest.raises(SpecError, match="pretrained=True"):
        timm.create_model("archsearch_mci", pretrained=True, spec=SMALL)
    with pytest.raises(SpecError, match="spec.family: expected 'mci', got 'cnn'"):
        timm.create_model("archsearch_mci", spec=tiny_cnn_spec)


def test_json_round_trip() -> None:
    for spec in (SMALL, mci_template("mci2", reparameterized=True)):
        again = load_spec(spec.to_json())
        assert again == spec and isinstance(again.dims, tuple) and isinstance(again.pos_embs, tuple)
    data = json.loads(SMALL.to_json())
    assert data["family"] == "mci" and data["dims"] == [32, 32, 64]


@pytest.mark.parametrize(("changes", "match"), [
    (dict(dims=(32, 48, 64)), r"dims\[1\]: must be a multiple of dims\[0\] = 32"),
    (dict(dims=(32, 32, 48)), r"multiple of head_dim 32, got 48"),
    (dict(depths=(1, 0, 1)), r"depths\[1\]: expected an integer in \[1, 256\]"),
    (dict(depths=(1, 1)), r"depths: expected 3 entries"),
    (dict(token_mixers=("repmixer", "conv", "attention")), r"token_mixers\[1\]: expected one of"),
    (dict(pos_embs=(False, 1, True)), r"pos_embs\[1\]: expected true or false"),
    (dict(mlp_ratios=(3.0, 0.0, 1.0)), r"mlp_ratios\[1\]: expected a number in \(0, 16\]"),
    (dict(cls_ratio=1.5), r"cls_ratio: expected an integer"),
    (dict(repmixer_kernel=4), r"repmixer_kernel: expected one of"),
    (dict(resolution=4), r"resolution: expected an integer in \[8, 4096\]"),
    (dict(reparameterized="yes"), r"reparameterized: expected true or false"),
    (dict(dims=5), r"dims: expected a list"),
])
def test_bad_specs(changes: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        dataclasses.replace(SMALL, **changes)


def test_unknown_json_field() -> None:
    data = json.loads(SMALL.to_json())
    data["depth"] = 3
    with pytest.raises(SpecError, match="unknown fields"):
        load_spec(json.dumps(data))
