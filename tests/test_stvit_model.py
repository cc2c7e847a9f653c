"""STViT: spec validation, the exact cost model against the built module, known answers against timm's DeiT."""

from __future__ import annotations

import dataclasses

import pytest
import timm
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archsearch.models import ArchsearchSTViT, build_model, count_macs, count_params, measured_costs
from archsearch.cost import costs, cross_layer_macs, paper_macs, stvit_activation_memory, stvit_macs, stvit_params, vit_macs
from archsearch.errors import SpecError
from archsearch.space import DEIT, STViTSpec, ViTSpec, load_spec, spec_from_dict


def _analytic(spec: STViTSpec) -> dict[str, int]:
    c = costs(spec)
    return {f"measured_{k}": c[k] for k in ("params", "macs", "params_with_head", "macs_with_head")}


def small(**fields: object) -> STViTSpec:
    base = dict(embed_dim=32, depth=4, num_heads=2, semantic_layer=1, num_semantic=4, semantic_layers=2,
                patch_size=8, resolution=32, num_classes=5)
    return STViTSpec(**{**base, **fields})  # type: ignore[arg-type]


# spec


def test_from_deit_is_the_paper_layout() -> None:
    spec = STViTSpec.from_deit("deit_small")
    assert (spec.embed_dim, spec.depth, spec.num_heads, spec.mlp_dim) == (384, 12, 6, 1536)
    assert (spec.semantic_layer, spec.semantic_layers, spec.tail_layers, spec.num_semantic) == (4, 2, 6, 16)
    assert (spec.image_tokens, spec.semantic_tokens, spec.semantic_grid) == (197, 17, 4)


@pytest.mark.parametrize("spec", [STViTSpec.from_deit("deit_tiny", recovery=True), small(class_token=False, mlp_ratio=1.5)])
def test_json_round_trip(spec: STViTSpec) -> None:
    assert STViTSpec.from_json(spec.to_json()) == spec
    assert spec_from_dict(spec.to_dict()) == spec
    assert load_spec(spec.to_json()) == spec


@pytest.mark.parametrize("fields, match", [
    (dict(num_semantic=5), r"stvit.num_semantic: expected a perfect square in \[1, 16\].*got 5"),
    (dict(num_semantic=25), r"stvit.num_semantic: expected an integer in \[1, 16\], got 25"),
    (dict(num_semantic=0), r"stvit.num_semantic"),
    (dict(semantic_layer=3), r"stvit.semantic_layer: expected an integer in \[0, 2\], got 3"),
    (dict(semantic_layers=0), r"stvit.semantic_layers: expected an integer in \[1, 4\], got 0"),
    (dict(semantic_layers=5), r"stvit.semantic_layers"),
    (dict(embed_dim=30, num_heads=4), r"stvit.embed_dim: expected a multiple of num_heads 4, got 30"),
    (dict(mlp_ratio=0), r"stvit.mlp_ratio: expected a number in \(0, 64\], got 0"),
    (dict(mlp_ratio=0.01), r"stvit.mlp_ratio: int\(mlp_ratio \* embed_dim\) must be >= 1"),
    (dict(resolution=36), r"stvit.resolution: expected a multiple of patch_size 8, got 36"),
    (dict(recovery="yes"), r"stvit.recovery: expected true or false, got 'yes'"),
    (dict(class_token=1), r"stvit.class_token: expected true or false"),
    (dict(depth=True), r"stvit.depth"),
])
def test_bad_fields_are_refused_with_the_rule(fields: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        small(**fields)


def test_unknown_deit_variant_and_json_fields() -> None:
    with pytest.raises(SpecError, match=r"unknown variant 'deit_huge'; expected one of \['deit_base'"):
        STViTSpec.from_deit("deit_huge")
    with pytest.raises(SpecError, match=r"unknown fields \['tokens'\]"):
        STViTSpec.from_dict({**small().to_dict(), "tokens": 3})


def test_layout_rows() -> None:
    title, columns, rows = STViTSpec.from_deit("deit_small", recovery=True).layout()
    assert "EMB 384" in title and columns[0] == "layers"
    assert [r[2] for r in rows] == [4, 2, 6, 1]
    assert rows[1][3:] == ("16+1", "196+1")


# cost model == built module


VARIANTS = {
    "paper": STViTSpec.from_deit("deit_tiny"),
    "recovery": STViTSpec.from_deit("deit_tiny", recovery=True),
    "no-class-token": STViTSpec.from_deit("deit_tiny", class_token=False),
    "no-class-token-recovery": STViTSpec.from_deit("deit_tiny", class_token=False, recovery=True),
    "l0-m1-one-semantic": STViTSpec.from_deit("deit_tiny", semantic_layer=0, num_semantic=1, semantic_layers=1),
    "l9-m36-three-semantic": STViTSpec.from_deit("deit_tiny", semantic_layer=9, num_semantic=36, semantic_layers=3),
    "no-tail": STViTSpec.from_deit("deit_tiny", semantic_layer=10, semantic_layers=2, recovery=True),
    "m-equals-n": STViTSpec.from_deit("deit_tiny", num_semantic=196),
    "odd-pooling": small(resolution=40, num_semantic=9, mlp_ratio=1.5, num_classes=0, in_channels=1),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_cost_model_equals_module(name: str) -> None:
    spec = VARIANTS[name]
    assert measured_costs(spec) == _analytic(spec)


@st.composite
def stvit_specs(draw: st.DrawFn) -> STViTSpec:
    heads = draw(st.integers(1, 3))
    depth = draw(st.integers(1, 4))
    layers = draw(st.integers(1, depth))
    patch = draw(st.sampled_from([2, 4, 8]))
    grid = draw(st.integers(1, 5))
    return STViTSpec(
        embed_dim=heads * draw(st.sampled_from([2, 4, 8])), depth=depth, num_heads=heads,
        mlp_ratio=draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 4.0])), semantic_layer=draw(st.integers(0, depth - layers)),
        num_semantic=draw(st.integers(1, grid)) ** 2, semantic_layers=layers, recovery=draw(st.booleans()),
        patch_size=patch, resolution=patch * grid, in_channels=draw(st.integers(1, 3)),
        class_token=draw(st.booleans()), num_classes=draw(st.integers(0, 7)),
    )


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=stvit_specs())
def test_cost_model_equals_module_on_random_specs(spec: STViTSpec) -> None:
    assert measured_costs(spec) == _analytic(spec)


def test_m_equal_n_costs_what_dense_deit_costs() -> None:
    """With M = N a semantic-token layer is an ordinary layer (same products, two more LayerNorm params)."""
    for variant, dims in DEIT.items():
        dense = ViTSpec.uniform(embed_dim=dims["embed_dim"], depth=dims["depth"], heads=dims["heads"])
        full = STViTSpec.from_deit(variant, num_semantic=196)
        assert stvit_macs(full, with_head=True) == vit_macs(dense, with_head=True)


def test_cross_layer_is_the_papers_semantic_layer() -> None:
    c, n, m = 384, 196, 16
    assert cross_layer_macs(c, 4 * c, m, n) == 2 * m * c * c + 2 * n * c * c + 2 * m * n * c + 8 * m * c * c


def test_activation_memory_grows_with_the_design() -> None:
    base = STViTSpec.from_deit("deit_small")
    assert stvit_activation_memory(base.replace(recovery=True)) >= stvit_activation_memory(base)
    assert stvit_activation_memory(base.replace(num_semantic=196)) >= stvit_activation_memory(base)
    assert stvit_activation_memory(base) > 4 * 3 * 224 * 224
    # the image-token layers set the peak of the paper's layout; with none, the recovery block does
    early = base.replace(semantic_layer=0, num_semantic=1, semantic_layers=1, class_token=False)
    assert stvit_activation_memory(early.replace(recovery=True)) == 4 * 196 * (2 * 384 + 1536)
    assert stvit_activation_memory(early.replace(recovery=True)) > stvit_activation_memory(early)


# known answers: timm's DeiT and the paper


@pytest.mark.parametrize("variant", sorted(DEIT))
def test_params_are_deit_params_plus_the_semantic_layer_norms(variant: str) -> None:
    """Q + KV hold exactly DeiT's QKV parameters; a semantic layer adds only its key/value LayerNorm."""
    with torch.device("meta"):
        deit = timm.create_model(f"{variant}_patch16_224")
    spec = STViTSpec.from_deit(variant)
    d = spec.embed_dim
    assert stvit_params(spec, with_head=True) == count_params(deit) + spec.semantic_layers * 2 * d


def test_deit_weights_fit_the_ordinary_blocks() -> None:
    with torch.device("meta"):
        deit = timm.create_model("deit_small_patch16_224")
        model = build_model(STViTSpec.from_deit("deit_small"))
    ours = {k: v.shape for k, v in model.state_dict().items()}
    theirs = {k: v.shape for k, v in deit.state_dict().items()}
    semantic = {f"blocks.{i}." for i in (4, 5)}
    shared = {k for k in theirs if not any(k.startswith(p) for p in semantic)}
    assert all(ours[k] == theirs[k] for k in shared)
    assert {k for k in ours if k not in theirs} == {
        f"blocks.{i}.{p}" for i in (4, 5) for p in ("attn.q.weight", "attn.q.bias", "attn.kv.weight", "attn.kv.bias",
                                                  "norm_kv.weight", "norm_kv.bias")}


def test_with_m_equal_n_and_deit_weights_the_model_computes_deit() -> None:
    """Pooling a G x G grid to G x G is the identity; with Q/KV cut from DeiT's QKV and the key/value
    norm equal to norm1, a semantic layer is DeiT's layer: outputs equal timm's VisionTransformer.

    (One semantic layer: a second one reads the image tokens again, not the first one's output.)"""
    torch.manual_seed(0)
    deit = timm.models.VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=4, num_heads=2, num_classes=5)
    deit.eval()
    spec = small(num_semantic=16, semantic_layer=1, semantic_layers=1)
    model = build_model(spec).eval()
    sd = dict(deit.state_dict())
    for i in (1,):
        w, b = sd.pop(f"blocks.{i}.attn.qkv.weight"), sd.pop(f"blocks.{i}.attn.qkv.bias")
        sd[f"blocks.{i}.attn.q.weight"], sd[f"blocks.{i}.attn.kv.weight"] = w[:32], w[32:]
        sd[f"blocks.{i}.attn.q.bias"], sd[f"blocks.{i}.attn.kv.bias"] = b[:32], b[32:]
        sd[f"blocks.{i}.norm_kv.weight"], sd[f"blocks.{i}.norm_kv.bias"] = sd[f"blocks.{i}.norm1.weight"], sd[f"blocks.{i}.norm1.bias"]
    model.load_state_dict(sd)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), deit(x), rtol=1e-5, atol=1e-5)


def test_deit_small_macs_from_timm() -> None:
    """The dense reference of the reduction and of the default budget, measured on timm's DeiT-S."""
    from timm.layers import set_fused_attn, use_fused_attn

    fused = use_fused_attn()
    set_fused_attn(False)
    try:
        with torch.device("meta"):
            deit = timm.create_model("deit_small_patch16_224")
    finally:
        set_fused_attn(fused)
    dense = ViTSpec.uniform(embed_dim=384, depth=12, heads=6)
    assert count_macs(deit, 224) == vit_macs(dense, with_head=True) == 4_598_882_304


def test_paper_layout_saves_about_58_percent() -> None:
    """PAPERS.md: DeiT-S with 4 + 2 semantic + 6 layers on 16 tokens saves about 58% of the MACs."""
    paper = 1 - paper_macs(embed_dim=384, tokens=196, semantic_layer=4, num_semantic=16, semantic_layers=2) / paper_macs(
        embed_dim=384, tokens=196)
    dense = ViTSpec.uniform(embed_dim=384, depth=12, heads=6)
    exact = 1 - stvit_macs(STViTSpec.from_deit("deit_small"), with_head=True) / vit_macs(dense, with_head=True)
    assert paper == pytest.approx(0.5917, abs=1e-4)  # the layer costing alone: 59.17%
    assert exact == pytest.approx(0.5814, abs=1e-4)  # patch embedding, class token, head counted: 58.14%
    assert abs(paper - 0.58) <= 0.02 and abs(exact - 0.58) <= 0.02


def test_paper_layout_module_macs() -> None:
    spec = STViTSpec.from_deit("deit_small")
    with torch.device("meta"):
        model = build_model(spec)
    assert count_macs(model, 224) == stvit_macs(spec, with_head=True) == 1_925_044_224


# module behaviour


@pytest.mark.parametrize("fields, tokens", [(dict(), 5), (dict(recovery=True), 17), (dict(class_token=False), 4),
                                            (dict(class_token=False, recovery=True), 16)])
def test_forward_shapes(fields: dict, tokens: int) -> None:
    model = build_model(small(**fields))
    x = torch.randn(2, 3, 32, 32)
    assert model.forward_features(x).shape == (2, tokens, 32)
    assert model(x).shape == (2, 5)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 32)


def test_timm_api() -> None:
    spec = small()
    model = timm.create_model("archsearch_stvit", spec=spec.to_json(), num_classes=3)
    assert isinstance(model, ArchsearchSTViT) and model.num_classes == 3 and model.spec.num_classes == 3
    assert model.pretrained_cfg["input_size"] == (3, 32, 32)
    model.reset_classifier(0, global_pool="avg")
    assert model.spec.num_classes == 0 and model(torch.randn(1, 3, 32, 32)).shape == (1, 32)
    model.set_grad_checkpointing(True)
    model.train()
    model(torch.randn(1, 3, 32, 32)).sum().backward()
    with pytest.raises(SpecError, match="'token' needs a class token"):
        timm.create_model("archsearch_stvit", spec=small(class_token=False), global_pool="token")
    with pytest.raises(SpecError, match="expected spec="):
        timm.create_model("archsearch_stvit")
    with pytest.raises(SpecError, match="family: expected 'stvit'"):
        timm.create_model("archsearch_stvit", spec=ViTSpec.uniform(embed_dim=32, depth=1, heads=2).to_dict())


def test_in_chans_override_keeps_costs_exact() -> None:
    spec = small()
    with torch.device("meta"):
        model = timm.create_model("archsearch_stvit", spec=spec, in_chans=1)
    assert model.spec.in_channels == 1
    one = dataclasses.replace(spec, in_channels=1)
    assert count_params(model) == stvit_params(one, with_head=True)
    assert count_macs(model, 32, in_channels=1) == stvit_macs(one, with_head=True)
