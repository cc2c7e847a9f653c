"""The MCi cost model equals the built module and timm's ``fastvit_mci*`` (training and inference forms)."""

from __future__ import annotations

import dataclasses
from functools import partial

import pytest
import timm
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from timm.layers import set_fused_attn
from timm.models.fastvit import FastVit, RepConditionalPosEnc
from timm.utils.model import reparameterize_model

from archsearch.models import build_model, count_macs, count_params, measured_costs
from archsearch.cost import costs, mci_activation_memory, mci_macs, mci_ops, mci_params
from archsearch.space import MCiSpec, mci_template

# timm 1.0.31 fastvit_mci0/1/2 with its default 512-d projection head, at 256 px (measured on the
# meta device with FlopCounterMode, unfused attention); PAPERS.md: 11.41/21.54/35.82 M params for
# training, 11.36/21.46/35.70 M after reparameterisation; 2.4/4.7/7.9 GMACs.
TIMM_MCI = {
    "mci0": dict(params=11_406_976, macs=2_392_653_824, rep_params=11_357_504, rep_macs=2_385_149_952),
    "mci1": dict(params=21_541_632, macs=4_667_736_064, rep_params=21_461_056, rep_macs=4_658_266_112),
    "mci2": dict(params=35_815_232, macs=7_846_389_760, rep_params=35_702_992, rep_macs=7_834_224_640),
}
PAPER_M = {"mci0": (11.41, 11.36, 2.4), "mci1": (21.54, 21.46, 4.7), "mci2": (35.82, 35.70, 7.9)}


def _costs_as_measured(spec: MCiSpec) -> dict[str, int]:
    c = costs(spec)
    return {"measured_params": c["params"], "measured_macs": c["macs"],
            "measured_params_with_head": c["params_with_head"], "measured_macs_with_head": c["macs_with_head"]}


def timm_fastvit(spec: MCiSpec) -> FastVit:
    """timm's FastVit with the spec's configuration (timm's attention head width is 32)."""
    n = spec.n_stages
    return FastVit(
        in_chans=spec.in_channels, layers=spec.depths, token_mixers=spec.token_mixers, embed_dims=spec.dims,
        mlp_ratios=spec.mlp_ratios, downsamples=(False,) + (True,) * (n - 1), se_downsamples=spec.se_downsamples,
        repmixer_kernel_size=spec.repmixer_kernel, num_classes=spec.num_classes,
        pos_embs=tuple(partial(RepConditionalPosEnc, spatial_shape=(7, 7)) if p else None for p in spec.pos_embs),
        lkc_use_act=spec.lkc_use_act, stem_use_scale_branch=spec.stem_scale_branch, cls_ratio=spec.cls_ratio,
        inference_mode=spec.reparameterized,
    )


@pytest.fixture(autouse=True)
def _unfused_attention():
    set_fused_attn(False)
    yield
    set_fused_attn(True)


@pytest.mark.parametrize("name", sorted(TIMM_MCI))
def test_template_costs_equal_timm_and_paper(name: str) -> None:
    ref = TIMM_MCI[name]
    spec = mci_template(name)
    rep = dataclasses.replace(spec, reparameterized=True)
    assert mci_params(spec, with_head=True) == ref["params"]
    assert mci_macs(spec, with_head=True) == ref["macs"]
    assert mci_params(rep, with_head=True) == ref["rep_params"]
    assert mci_macs(rep, with_head=True) == ref["rep_macs"]
    # backbone = without the 1024 -> 512 projection
    assert mci_params(spec) == ref["params"] - (2 * spec.dims[-1] * 512 + 512)
    assert mci_macs(spec) == ref["macs"] - 2 * spec.dims[-1] * 512
    train_m, rep_m, gmacs = PAPER_M[name]
    assert round(ref["params"] / 1e6, 2) == train_m and round(ref["rep_params"] / 1e6, 2) == rep_m
    assert abs(ref["macs"] / 1e9 - gmacs) < 0.06  # mci2 measures 7.85 G against the published 7.9 G


@pytest.mark.parametrize("name", sorted(TIMM_MCI))
def test_timm_training_form_measures_the_reference(name: str) -> None:
    ref = TIMM_MCI[name]
    with torch.device("meta"):
        model = timm.create_model(f"fastvit_{name}")
    assert model.num_classes == 512
    assert (count_params(model), count_macs(model, 256)) == (ref["params"], ref["macs"])
    model.reset_classifier(0)
    spec = mci_template(name)
    assert (count_params(model), count_macs(model, 256)) == (mci_params(spec), mci_macs(spec))


@pytest.mark.parametrize("name", sorted(TIMM_MCI))
def test_timm_reparameterized_measures_the_reference(name: str) -> None:
    ref = TIMM_MCI[name]
    with torch.device("meta"):
        fused = reparameterize_model(timm.create_model(f"fastvit_{name}"), inplace=True)
    assert (count_params(fused), count_macs(fused, 256)) == (ref["rep_params"], ref["rep_macs"])


@pytest.mark.parametrize("name", sorted(TIMM_MCI))
@pytest.mark.parametrize("reparameterized", [False, True])
def test_built_templates_equal_cost_model(name: str, reparameterized: bool) -> None:
    spec = mci_template(name, reparameterized=reparameterized)
    assert measured_costs(spec) == _costs_as_measured(spec)


@st.composite
def tiny_specs(draw: st.DrawFn, *, timm_compatible: bool = False) -> MCiSpec:
    n = draw(st.integers(1, 4))
    head_dim = 32 if timm_compatible else draw(st.sampled_from([1, 2]))
    d = draw(st.sampled_from([32] if timm_compatible else [2, 4, 6, 8]))
    dims = [d]
    for _ in range(n - 1):
        dims.append(dims[-1] * draw(st.sampled_from([1, 2] if timm_compatible else [1, 2, 3])))
    mixers = tuple(draw(st.sampled_from(["repmixer", "attention"])) for _ in range(n))
    return MCiSpec(
        dims=tuple(dims), depths=tuple(draw(st.integers(1, 2)) for _ in range(n)), token_mixers=mixers,
        pos_embs=tuple(draw(st.booleans()) for _ in range(n)), se_downsamples=tuple(draw(st.booleans()) for _ in range(n)),
        mlp_ratios=tuple(draw(st.sampled_from([1.0, 1.5, 2.0, 3.0])) for _ in range(n)), head_dim=head_dim,
        repmixer_kernel=draw(st.sampled_from([1, 3, 5])), cls_ratio=draw(st.integers(1, 3)),
        stem_scale_branch=draw(st.booleans()), lkc_use_act=draw(st.booleans()), reparameterized=draw(st.booleans()),
        resolution=draw(st.integers(8, 40)), in_channels=draw(st.integers(1, 4)), num_classes=draw(st.integers(0, 9)),
    )


_EVERY_KIND = MCiSpec(
    dims=(4, 8, 8, 24), depths=(2, 1, 1, 2), token_mixers=("repmixer", "attention", "repmixer", "attention"),
    pos_embs=(True, False, True, True), se_downsamples=(True, True, False, True), mlp_ratios=(3.0, 1.5, 2.0, 1.0),
    head_dim=4, cls_ratio=1, resolution=23, num_classes=5,
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=tiny_specs())
@example(spec=_EVERY_KIND)
@example(spec=dataclasses.replace(_EVERY_KIND, reparameterized=True, stem_scale_branch=False, repmixer_kernel=1))
def test_cost_model_equals_built_module(spec: MCiSpec) -> None:
    assert measured_costs(spec) == _costs_as_measured(spec)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=tiny_specs(timm_compatible=True))
def test_cost_model_equals_timm_fastvit(spec: MCiSpec) -> None:
    with torch.device("meta"):
        model = timm_fastvit(spec)
    assert count_params(model) == mci_params(spec, with_head=True)
    assert count_macs(model, spec.resolution, in_channels=spec.in_channels) == mci_macs(spec, with_head=True)


def test_fused_attention_counts_the_same() -> None:
    spec = dataclasses.replace(_EVERY_KIND, head_dim=4)
    set_fused_attn(True)
    with torch.device("meta"):
        model = build_model(spec)
    assert count_macs(model, spec.resolution) == mci_macs(spec, with_head=True)


def test_every_operation_kind_is_costed() -> None:
    roles = {op.role for op in mci_ops(_EVERY_KIND)}
    assert roles == {"stem.0", "stem.1", "stem.2", "down.lkc", "down.se", "down.pw", "cpe", "repmixer", "attn.norm",
                     "attn.qkv", "attn.core", "attn.proj", "scale", "ffn.dw", "ffn.fc1", "ffn.fc2", "final", "final.se"}


def test_costs_grow_with_depth_and_are_affine_in_it() -> None:
    """The solver relies on both: cost(L + 1) - cost(L) does not depend on L."""
    spec = mci_template("mci0", resolution=64)
    for i in range(4):
        c = [mci_macs(dataclasses.replace(spec, depths=spec.depths[:i] + (L,) + spec.depths[i + 1:]), with_head=True)
             for L in (1, 2, 3)]
        p = [mci_params(dataclasses.replace(spec, depths=spec.depths[:i] + (L,) + spec.depths[i + 1:]), with_head=True)
             for L in (1, 2, 3)]
        assert c[2] - c[1] == c[1] - c[0] > 0 and p[2] - p[1] == p[1] - p[0] > 0


def test_activation_memory_peak() -> None:
    spec = mci_template("mci0")
    mem = mci_activation_memory(spec)
    assert mem == 4 * max(op.memory for op in mci_ops(spec))
    # at least the stem's input and its two 128x128x64 maps (output + partial sum)
    assert mem >= 4 * (3 * 256 * 256 + 2 * 64 * 128 * 128)
    assert mci_activation_memory(dataclasses.replace(spec, resolution=512)) > mem
