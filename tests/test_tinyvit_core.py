"""TinyViT: spec validation and JSON, cost model == built module == timm (params, MACs, outputs)."""

from __future__ import annotations

import json

import pytest
import torch
import timm
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.models import build_model, count_macs, count_params, measured_costs
from archsearch.models.tinyvit import AttentionStage, ConvStage, Stem, relative_offset_index
from archsearch.cost import costs, get_cost_model
from archsearch.cost.tinyvit import attention_stage_costs, head_costs, mbconv_stage_costs, stem_costs
from archsearch.errors import SpecError
from archsearch.space import TINYVIT_5M, TINYVIT_11M, TINYVIT_21M, TinyViTSpec, load_spec

# params / MACs of timm's tiny_vit_{5m,11m,21m}_224 with 1000 classes (FlopCounterMode / 2, unfused
# attention), measured with timm 1.0.31; the paper (Wu et al., ECCV 2022) rounds them to
# 5.4M / 1.3G, 11M / 2.0G, 21M / 4.3G.
PUBLISHED = {
    "tiny_vit_5m_224": (TINYVIT_5M, 5_392_764, 1_255_174_720),
    "tiny_vit_11m_224": (TINYVIT_11M, 10_996_972, 2_016_046_144),
    "tiny_vit_21m_224": (TINYVIT_21M, 21_198_568, 4_250_329_536),
}


@pytest.fixture(autouse=True)
def _unfused_attention():
    """timm's TinyViT attention unfused while a test builds a timm model (FlopCounterMode sees the matmuls)."""
    from timm.layers import config

    old = config._USE_FUSED_ATTN
    timm.layers.set_fused_attn(False)
    yield
    config._USE_FUSED_ATTN = old


def _analytic(spec: TinyViTSpec) -> dict[str, int]:
    c = costs(spec)
    return {"measured_params": c["params"], "measured_macs": c["macs"],
            "measured_params_with_head": c["params_with_head"], "measured_macs_with_head": c["macs_with_head"]}


def _timm_costs(name_or_kwargs: str | dict, resolution: int, num_classes: int = 1000) -> tuple[int, int]:
    with torch.device("meta"):
        if isinstance(name_or_kwargs, str):
            model = timm.create_model(name_or_kwargs, num_classes=num_classes)
        else:
            model = timm.models.tiny_vit.TinyVit(**name_or_kwargs)
    assert not any(getattr(m, "fused_attn", False) for m in model.modules())
    return count_params(model), count_macs(model, resolution)


# ---------------------------------------------------------------- spec


def test_published_specs_follow_the_paper():
    assert TINYVIT_21M.embed_dims == (96, 192, 384, 576) and TINYVIT_21M.num_heads == (3, 6, 12, 18)
    for spec in (TINYVIT_5M, TINYVIT_11M, TINYVIT_21M):
        assert spec.depths == (2, 2, 6, 2) and spec.window_sizes == (7, 7, 14, 7)
        assert spec.sides == (56, 28, 14, 7)


def test_heads_default_to_dim_over_head_dim():
    spec = TinyViTSpec(embed_dims=(64, 128, 160, 320))
    assert spec.num_heads == (2, 4, 5, 10)


def test_json_round_trip_and_load():
    spec = TinyViTSpec(embed_dims=(32, 64, 96), depths=(1, 2, 3), window_sizes=(7, 5, 14), mlp_ratio=3.5,
                       local_conv_size=5, resolution=96, in_channels=1, num_classes=10, name="t")
    assert TinyViTSpec.from_json(spec.to_json()) == spec
    assert load_spec(spec.to_json()) == spec
    assert json.loads(spec.to_json())["family"] == "tinyvit"


def test_layout_lists_stem_and_stages():
    title, columns, rows = TINYVIT_11M.layout()
    assert "tinyvit-11m" in title and len(columns) == len(rows[0])
    assert [r[0] for r in rows] == ["stem", 1, 2, 3, 4]
    assert rows[3][3:6] == (256, 8, 14)


@pytest.mark.parametrize("changes, field", [
    (dict(embed_dims=(64, 100, 160)), "embed_dims[1]"),
    (dict(embed_dims=(64,)), "embed_dims"),
    (dict(embed_dims=()), "embed_dims"),
    (dict(depths=(2, 2)), "depths"),
    (dict(depths=(2, 0, 2)), "depths[1]"),
    (dict(num_heads=(2, 3, 5)), "num_heads[1]"),
    (dict(window_sizes=(7, 0, 7)), "window_sizes[1]"),
    (dict(window_sizes=(7, 7)), "window_sizes"),
    (dict(local_conv_size=4), "local_conv_size"),
    (dict(mlp_ratio=0), "mlp_ratio"),
    (dict(mbconv_expand_ratio=float("nan")), "mbconv_expand_ratio"),
    (dict(resolution=4), "resolution"),
    (dict(num_classes=-1), "num_classes"),
    (dict(in_channels=0), "in_channels"),
    (dict(head_dim=0), "head_dim"),
])
def test_bad_specs_name_the_field(changes, field):
    base = dict(embed_dims=(64, 128, 160), depths=(1, 1, 1), window_sizes=(7, 7, 7))
    with pytest.raises(SpecError, match=f"tinyvit.{field.replace('[', '.').replace(']', '.')}"):
        TinyViTSpec(**{**base, **changes})


def test_bad_json_field_is_rejected():
    data = TINYVIT_5M.to_dict()
    data["windows"] = [7, 7, 7, 7]
    with pytest.raises(SpecError, match="unknown fields"):
        TinyViTSpec.from_dict(data)


# ---------------------------------------------------------------- costs vs modules, part by part


def _part_costs(module: torch.nn.Module, shape: tuple[int, ...]) -> tuple[int, int]:
    return count_params(module), count_macs(module, shape[-1], in_channels=shape[1])


@pytest.mark.parametrize("in_channels, dim, resolution", [(3, 32, 224), (1, 64, 37), (4, 96, 8)])
def test_stem_costs_equal_module(in_channels, dim, resolution):
    with torch.device("meta"):
        module = Stem(in_channels, dim)
    cost = stem_costs(dim, in_channels=in_channels, resolution=resolution)
    assert (cost.params, cost.macs) == _part_costs(module, (1, in_channels, resolution, resolution))


@pytest.mark.parametrize("dim, depth, side, ratio", [(32, 1, 9, 4.0), (64, 2, 14, 2.5), (48, 3, 5, 1.0)])
def test_mbconv_stage_costs_equal_module(dim, depth, side, ratio):
    with torch.device("meta"):
        module = ConvStage(dim, depth, ratio, [0.0] * depth)
    cost = mbconv_stage_costs(dim, depth, side, expand_ratio=ratio)
    assert (cost.params, cost.macs) == _part_costs(module, (1, dim, side, side))


@pytest.mark.parametrize("side_in, window", [
    (28, 7),   # side 14, two windows per side, no padding
    (14, 7),   # side 7 == window: one window
    (14, 14),  # side 7 < window: one window padded to 14
    (26, 5),   # side 13: padded to 15, three windows per side
    (9, 2),    # odd side halves up: side 5 padded to 6
    (4, 1),    # one-token windows
])
@pytest.mark.parametrize("mlp_ratio, local_conv", [(4.0, 3), (2.5, 5), (1.0, 1)])
def test_attention_stage_costs_equal_module(side_in, window, mlp_ratio, local_conv):
    dim_in, dim, heads, depth = 32, 64, 4, 2
    with torch.device("meta"):
        module = AttentionStage(dim_in, dim, depth, heads, window, mlp_ratio, local_conv, 0.0, [0.0] * depth)
    cost = attention_stage_costs(dim_in, dim, depth, side_in, heads=heads, window=window, mlp_ratio=mlp_ratio,
                                 local_conv_size=local_conv)
    assert (cost.params, cost.macs) == _part_costs(module, (1, dim_in, side_in, side_in))


def test_relative_bias_params_and_index():
    idx = relative_offset_index(3)
    assert idx.shape == (9, 9) and int(idx.max()) == 8 and int(idx.min()) == 0
    assert idx[0].tolist() == list(range(9))  # from the corner every offset appears once, row-major
    assert torch.equal(idx, idx.T)
    with torch.device("meta"):
        stage = AttentionStage(32, 64, 1, 2, 5, 4.0, 3, 0.0, [0.0])
    assert stage.blocks[0].attn.attention_biases.shape == (2, 25)


def test_head_costs():
    norm, fc = head_costs(320, 1000)
    assert (norm.params, fc.params, fc.macs) == (640, 321_000, 320_000)
    assert head_costs(320, 0)[1].params == 0


# ---------------------------------------------------------------- whole models


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_costs_equal_timm_published_models(name):
    spec, params, macs = PUBLISHED[name]
    assert _timm_costs(name, 224) == (params, macs)
    c = costs(spec)
    assert (c["params_with_head"], c["macs_with_head"]) == (params, macs)
    assert measured_costs(spec) == _analytic(spec)


@pytest.mark.parametrize("resolution", [64, 96, 100, 160])
def test_costs_equal_timm_at_other_resolutions(resolution):
    spec = TINYVIT_21M.replace(resolution=resolution)
    assert _timm_costs("tiny_vit_21m_224", resolution) == (
        costs(spec)["params_with_head"], costs(spec)["macs_with_head"])


@pytest.mark.parametrize("resolution, windows", [(64, (7, 3, 3, 2)), (96, (7, 5, 4, 7)), (72, (7, 7, 14, 7))])
def test_small_specs_equal_timm_with_padded_windows(resolution, windows):
    spec = TinyViTSpec(embed_dims=(32, 64, 96, 128), depths=(1, 2, 2, 1), window_sizes=windows,
                       resolution=resolution, num_classes=10)
    assert _timm_costs(spec.timm_kwargs(), resolution) == (costs(spec)["params_with_head"], costs(spec)["macs_with_head"])
    assert measured_costs(spec) == _analytic(spec)


def test_module_computes_what_timm_computes():
    """timm's state dict loads strictly and both give the same logits (padded windows, odd side)."""
    spec = TinyViTSpec(embed_dims=(32, 64, 96), depths=(1, 2, 1), window_sizes=(7, 3, 4), local_conv_size=5,
                       mlp_ratio=3.0, resolution=52, num_classes=5)
    torch.manual_seed(0)
    ref = timm.models.tiny_vit.TinyVit(**spec.timm_kwargs()).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0.0, 0.05)
    model = build_model(spec).eval()
    model.load_state_dict(ref.state_dict(), strict=True)
    ref, model = ref.double(), model.double()  # float64: differences of summation order vanish
    x = torch.randn(2, 3, 52, 52, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(model.forward_head(model.forward_features(x), pre_logits=True),
                                   ref.forward_head(ref.forward_features(x), pre_logits=True), rtol=1e-9, atol=1e-9)


def test_timm_api():
    spec = TinyViTSpec(embed_dims=(32, 64), depths=(1, 1), window_sizes=(7, 4), resolution=48, num_classes=7)
    model = timm.create_model("archsearch_tinyvit", spec=spec.to_dict())
    assert model.pretrained_cfg["input_size"] == (3, 48, 48) and model.default_cfg is model.pretrained_cfg
    assert model.num_classes == 7 and model.num_features == 64
    x = torch.randn(1, 3, 48, 48)
    assert model(x).shape == (1, 7)
    assert model.forward_features(x).shape == (1, 64, 6, 6)
    model.reset_classifier(0)
    assert model(x).shape == (1, 64) and model.spec.num_classes == 0
    assert count_params(model) == get_cost_model("tinyvit").params(spec, with_head=False)
    other = timm.create_model("archsearch_tinyvit", spec=spec, num_classes=3, in_chans=1)
    assert other(torch.randn(1, 1, 48, 48)).shape == (1, 3)
    feats = timm.create_model("archsearch_tinyvit", spec=spec, features_only=True)
    assert [f.shape[1] for f in feats(x)] == [32, 64]
    with pytest.raises(SpecError, match="pretrained"):
        timm.create_model("archsearch_tinyvit", spec=spec, pretrained=True)
    with pytest.raises(SpecError, match="spec="):
        timm.create_model("archsearch_tinyvit")


@st.composite
def tinyvit_specs(draw) -> TinyViTSpec:
    head_dim = draw(st.sampled_from([8, 16, 32]))
    n = draw(st.integers(2, 4))
    dims = tuple(head_dim * draw(st.integers(1, 3)) for _ in range(n))
    return TinyViTSpec(
        embed_dims=dims,
        depths=tuple(draw(st.integers(1, 2)) for _ in range(n)),
        window_sizes=tuple(draw(st.integers(1, 8)) for _ in range(n)),
        head_dim=head_dim,
        mlp_ratio=draw(st.sampled_from([1.0, 2.0, 3.5, 4.0])),
        mbconv_expand_ratio=draw(st.sampled_from([1.0, 2.5, 4.0])),
        local_conv_size=draw(st.sampled_from([1, 3, 5])),
        resolution=draw(st.integers(8, 96)),
        in_channels=draw(st.sampled_from([1, 3])),
        num_classes=draw(st.sampled_from([0, 10])),
    )


@settings(max_examples=60, deadline=None)
@given(tinyvit_specs())
def test_random_specs_cost_model_equals_module(spec):
    assert measured_costs(spec) == _analytic(spec)


@settings(max_examples=100, deadline=None)
@given(tinyvit_specs())
def test_activation_memory_is_positive_and_bounded(spec):
    mem = costs(spec)["activation_memory"]
    assert mem > 0 and mem % 4 == 0
    # at least the input image and at most every activation of the network at once
    assert mem >= 4 * spec.in_channels * spec.resolution**2
