"""The heterogeneous ViT module: timm's API, exact costs (vs the cost model and timm's DeiT), weight slicing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import timm.layers
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from timm.models.vision_transformer import VisionTransformer

from archsearch.models import (
    ArchsearchViT, build_model, count_macs, count_params, export_onnx, list_builders, load_timm_weights, measured_costs,
)
from archsearch.cli.main import main
from archsearch.cost import costs
from archsearch.cost.vit import vit_macs, vit_params
from archsearch.errors import SpecError
from archsearch.space import DEIT, ViTBlockSpec, ViTSpec


def hetero_spec(*, class_token: bool = True, num_classes: int = 7, resolution: int = 24, patch: int = 8) -> ViTSpec:
    """qk < v, qk > v, one head, an MLP narrower than EMB: every dimension differs somewhere."""
    blocks = (ViTBlockSpec(3, 8, 16, 40), ViTBlockSpec(1, 24, 8, 12), ViTBlockSpec(4, 4, 4, 64))
    return ViTSpec(32, blocks, patch_size=patch, resolution=resolution, class_token=class_token,
                   num_classes=num_classes, name="hetero")


def assert_costs_equal(spec: ViTSpec) -> None:
    c, m = costs(spec), measured_costs(spec)
    for key in ("params", "macs", "params_with_head", "macs_with_head"):
        assert c[key] == m[f"measured_{key}"], (key, spec)


@pytest.fixture
def unfused_timm():
    """timm's attention switched off before any model is built, restored afterwards."""
    from timm.layers import config

    before = config._USE_FUSED_ATTN
    timm.layers.set_fused_attn(False)
    yield
    config._USE_FUSED_ATTN = before


# registration and timm's model API


def test_registered_with_archsearch_and_timm() -> None:
    assert "vit" in list_builders()
    assert "archsearch_vit" in timm.list_models("archsearch*")
    model = timm.create_model("archsearch_vit", spec=hetero_spec())
    assert isinstance(model, ArchsearchViT) and model.spec == hetero_spec()


def test_timm_api() -> None:
    spec = hetero_spec()
    model = build_model(spec).eval()
    x = torch.randn(2, 3, 24, 24)
    assert model.pretrained_cfg["input_size"] == (3, 24, 24) and model.default_cfg is model.pretrained_cfg
    assert model.num_features == 32 and model.num_classes == 7
    feats = model.forward_features(x)
    assert feats.shape == (2, spec.num_tokens, 32)
    assert model.forward_head(feats, pre_logits=True).shape == (2, 32)
    assert model(x).shape == (2, 7)
    model.set_grad_checkpointing(True)
    with torch.no_grad():
        assert torch.allclose(model.train()(x), model.eval()(x), atol=1e-6)  # no dropout configured
    model.reset_classifier(0)
    assert model(x).shape == (2, 32) and model.spec.num_classes == 0
    model.reset_classifier(5, global_pool="avg")
    assert model(x).shape == (2, 5) and model.global_pool == "avg" and model.get_classifier().out_features == 5
    model.reset_classifier(3, global_pool="")
    assert model(x).shape == (2, spec.num_tokens, 3)


def test_timm_arguments_override_the_spec() -> None:
    model = timm.create_model("archsearch_vit", spec=hetero_spec().to_json(), num_classes=4, in_chans=1, img_size=32)
    assert model.spec.num_classes == 4 and model.spec.in_channels == 1 and model.spec.resolution == 32
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 4)
    assert model.pretrained_cfg["input_size"] == (1, 32, 32)


def test_average_pooling_without_class_token() -> None:
    model = build_model(hetero_spec(class_token=False)).eval()
    assert model.cls_token is None and model.global_pool == "avg"
    assert isinstance(model.norm, torch.nn.Identity) and isinstance(model.fc_norm, torch.nn.LayerNorm)
    x = torch.randn(2, 3, 24, 24)
    feats = model.forward_features(x)
    assert torch.allclose(model.forward_head(feats, pre_logits=True), model.fc_norm(feats.mean(1)))


def test_fused_attention_gives_the_same_outputs() -> None:
    spec = hetero_spec()
    torch.manual_seed(0)
    plain = build_model(spec).eval()
    fused = build_model(spec, fused_attn=True).eval()
    fused.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        assert torch.allclose(plain(x), fused(x), atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(global_pool="max"), "global_pool"),
    (dict(pretrained=True), "pretrained"),
    (dict(features_only=True), "features_only"),
    (dict(img_size=(24, 32)), "img_size"),
])
def test_bad_arguments_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        timm.create_model("archsearch_vit", spec=hetero_spec(), **kwargs)


def test_token_pooling_needs_a_class_token() -> None:
    with pytest.raises(SpecError, match="class token"):
        build_model(hetero_spec(class_token=False), global_pool="token")
    with pytest.raises(SpecError, match="expected spec="):
        timm.create_model("archsearch_vit")


# exact costs


@pytest.mark.parametrize("spec", [
    hetero_spec(),
    hetero_spec(class_token=False),
    hetero_spec(num_classes=0),
    hetero_spec(resolution=28, patch=7),
    hetero_spec(resolution=16, patch=16),  # one patch
    ViTSpec.uniform(embed_dim=48, depth=2, heads=3, patch_size=4, resolution=16, num_classes=10),
], ids=["hetero", "avg-pool", "no-head", "patch7", "one-patch", "uniform"])
def test_costs_equal_the_module(spec: ViTSpec) -> None:
    assert_costs_equal(spec)


@st.composite
def vit_specs(draw: st.DrawFn) -> ViTSpec:
    patch = draw(st.sampled_from([2, 4, 5, 8]))
    side = patch * draw(st.integers(1, 4))
    blocks = tuple(
        ViTBlockSpec(draw(st.integers(1, 4)), draw(st.integers(1, 12)), draw(st.integers(1, 12)), draw(st.integers(1, 48)))
        for _ in range(draw(st.integers(1, 3)))
    )
    return ViTSpec(draw(st.integers(1, 24)), blocks, patch_size=patch, resolution=side,
                   in_channels=draw(st.sampled_from([1, 3])), class_token=draw(st.booleans()),
                   num_classes=draw(st.sampled_from([0, 1, 10])))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=vit_specs())
def test_costs_equal_the_module_on_random_specs(spec: ViTSpec) -> None:
    assert_costs_equal(spec)


@pytest.mark.parametrize("name", sorted(DEIT))
def test_deit_counts_equal_timm_and_the_module(name: str, unfused_timm: None) -> None:
    spec = ViTSpec.uniform(**DEIT[name])
    with torch.device("meta"):
        ref = timm.create_model(f"{name}_patch16_224")
        ours = build_model(spec)
    assert all(not b.attn.fused_attn for b in ref.blocks)
    for model in (ref, ours):
        assert count_params(model) == vit_params(spec, with_head=True)
        assert count_macs(model, 224) == vit_macs(spec, with_head=True)
    with torch.device("meta"):
        ref.reset_classifier(0)
        ours.reset_classifier(0)
    for model in (ref, ours):
        assert count_params(model) == vit_params(spec)
        assert count_macs(model, 224) == vit_macs(spec)


def test_deit_known_answers() -> None:
    """The published-model totals (whole model) the cost model must keep reproducing."""
    got = {n: (vit_params(ViTSpec.uniform(**DEIT[n]), with_head=True), vit_macs(ViTSpec.uniform(**DEIT[n]), with_head=True))
           for n in DEIT}
    assert got == {"deit_tiny": (5_717_416, 1_253_683_200), "deit_small": (22_050_664, 4_598_882_304),
                   "deit_base": (86_567_656, 17_563_828_224)}


def test_show_verify_on_a_vit_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "vit.json"
    path.write_text(hetero_spec().to_json())
    assert main(["show", str(path), "--verify", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["verified"] is True and info["family"] == "vit"
    assert info["params_with_head"] == info["measured_params_with_head"] == vit_params(hetero_spec(), with_head=True)


def test_onnx_export(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install 'archsearch[onnx]')")
    model = build_model(hetero_spec())
    path = export_onnx(model, tmp_path / "vit.onnx", resolution=24)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    (out,) = proto.graph.output
    assert out.type.tensor_type.shape.dim[1].dim_value == 7
    ops = {n.op_type for n in proto.graph.node}
    assert {"MatMul", "Softmax", "Conv"} <= ops


# loading timm weights by slicing


def random_timm_vit(*, class_token: bool = True, depth: int = 2, embed_dim: int = 48, heads: int = 3,
                    num_classes: int = 10, seed: int = 0, **kwargs) -> VisionTransformer:
    torch.manual_seed(seed)
    model = VisionTransformer(img_size=32, patch_size=8, embed_dim=embed_dim, depth=depth, num_heads=heads,
                              num_classes=num_classes, class_token=class_token,
                              global_pool="token" if class_token else "avg", **kwargs)
    with torch.no_grad():
        for p in model.parameters():  # timm zeroes biases; random ones make the comparison meaningful
            p.normal_(0, 0.3)
    return model.eval()


def same_dims(src: VisionTransformer, *, class_token: bool = True) -> ViTSpec:
    return ViTSpec.uniform(embed_dim=src.embed_dim, depth=len(src.blocks), heads=src.blocks[0].attn.num_heads,
                           patch_size=8, resolution=32, num_classes=src.num_classes, class_token=class_token)


@pytest.mark.parametrize("class_token", [True, False])
def test_loading_a_timm_vit_of_the_same_dims_reproduces_it(class_token: bool) -> None:
    src = random_timm_vit(class_token=class_token)
    model = load_timm_weights(build_model(same_dims(src, class_token=class_token)).eval(), src)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), src(x), atol=1e-5)
        direct = build_model(same_dims(src, class_token=class_token)).eval()
        direct.load_state_dict(src.state_dict())  # same names and qkv layout: a plain load works too
        assert torch.allclose(direct(x), src(x), atol=1e-5)


def test_loading_from_a_state_dict_file(tmp_path: Path) -> None:
    src = random_timm_vit()
    torch.save(src.state_dict(), tmp_path / "w.pth")
    sd = torch.load(tmp_path / "w.pth", weights_only=True)
    model = load_timm_weights(build_model(same_dims(src)).eval(), sd, num_heads=3)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), src(x), atol=1e-5)
    with pytest.raises(SpecError, match="num_heads"):
        load_timm_weights(build_model(same_dims(src)), sd)
    with pytest.raises(SpecError, match="num_heads"):
        load_timm_weights(build_model(same_dims(src)), sd, num_heads=[3])


SMALL = ViTSpec(32, (ViTBlockSpec(2, 8, 12, 100), ViTBlockSpec(3, 16, 16, 192)), patch_size=8, resolution=32,
                num_classes=10)


def test_loading_into_a_smaller_spec_takes_the_first_indices() -> None:
    src = random_timm_vit()  # EMB 48, 3 heads of 16, MLP 192
    sd = src.state_dict()
    model = load_timm_weights(build_model(SMALL), src)
    got = model.state_dict()
    assert torch.equal(got["pos_embed"], sd["pos_embed"][:, :, :32])
    assert torch.equal(got["patch_embed.proj.weight"], sd["patch_embed.proj.weight"][:32])
    assert torch.equal(got["head.weight"], sd["head.weight"][:, :32])
    w = sd["blocks.0.attn.qkv.weight"]  # rows: q (3 heads x 16), k, v
    q = torch.cat([w[0:8], w[16:24]])[:, :32]
    k = torch.cat([w[48:56], w[64:72]])[:, :32]
    v = torch.cat([w[96:108], w[112:124]])[:, :32]
    assert torch.equal(got["blocks.0.attn.qkv.weight"], torch.cat([q, k, v]))
    assert torch.equal(got["blocks.0.attn.proj.weight"],
                       torch.cat([sd["blocks.0.attn.proj.weight"][:32, 0:12], sd["blocks.0.attn.proj.weight"][:32, 16:28]], 1))
    assert torch.equal(got["blocks.0.mlp.fc1.weight"], sd["blocks.0.mlp.fc1.weight"][:100, :32])
    assert torch.equal(got["blocks.0.mlp.fc2.weight"], sd["blocks.0.mlp.fc2.weight"][:32, :100])
    assert torch.equal(got["blocks.1.norm2.bias"], sd["blocks.1.norm2.bias"][:32])


def test_loading_with_index_sets_picks_those_indices() -> None:
    src = random_timm_vit()
    sd = src.state_dict()
    embed = list(range(47, 15, -1))  # 32 channels, reversed
    keep = {"embed": embed, "heads": [[2, 0], None], "qk": [[15, 1, 3, 5, 7, 9, 11, 13], None],
            "v": [list(range(4, 16)), None], "mlp": [list(range(191, 91, -1)), None]}
    model = load_timm_weights(build_model(SMALL), src, keep=keep)
    got = model.state_dict()
    E = torch.tensor(embed)
    assert torch.equal(got["cls_token"], sd["cls_token"][:, :, E])
    w = sd["blocks.0.attn.qkv.weight"][:, E]
    qk = torch.tensor([15, 1, 3, 5, 7, 9, 11, 13])
    q = torch.cat([w[32 + qk], w[0 + qk]])
    k = torch.cat([w[48 + 32 + qk], w[48 + qk]])
    v = torch.cat([w[96 + 32 + 4:96 + 48], w[96 + 4:96 + 16]])
    assert torch.equal(got["blocks.0.attn.qkv.weight"], torch.cat([q, k, v]))
    assert torch.equal(got["blocks.0.attn.qkv.bias"][:8], sd["blocks.0.attn.qkv.bias"][32 + qk])
    cols = torch.cat([torch.arange(36, 48), torch.arange(4, 16)])
    assert torch.equal(got["blocks.0.attn.proj.weight"], sd["blocks.0.attn.proj.weight"][E][:, cols])
    assert torch.equal(got["blocks.0.mlp.fc2.weight"], sd["blocks.0.mlp.fc2.weight"][E][:, torch.arange(191, 91, -1)])
    # block 1 kept the first ones
    assert torch.equal(got["blocks.1.mlp.fc1.weight"], sd["blocks.1.mlp.fc1.weight"][:192][:, E])


def test_pruning_whole_heads_or_mlp_units_keeps_the_remaining_function() -> None:
    """Slicing only heads and MLP units whose weights are zero leaves the outputs unchanged."""
    src = random_timm_vit()
    with torch.no_grad():
        for blk in src.blocks:
            blk.attn.proj.weight[:, 16:32] = 0  # head 1 contributes nothing
            blk.mlp.fc2.weight[:, 100:] = 0  # MLP units 100.. contribute nothing
    spec = ViTSpec(48, (ViTBlockSpec(2, 16, 16, 100),) * 2, patch_size=8, resolution=32, num_classes=10)
    model = load_timm_weights(build_model(spec).eval(), src, keep={"heads": [[0, 2], [0, 2]]})
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), src(x), atol=1e-5)


def test_rescale_qk_keeps_the_logit_scale() -> None:
    src = random_timm_vit()
    with torch.no_grad():
        for blk in src.blocks:  # query/key dims 8..15 of every head are zero: dropping them changes only the scale
            for h in range(3):
                blk.attn.qkv.weight[h * 16 + 8:h * 16 + 16] = 0
                blk.attn.qkv.bias[h * 16 + 8:h * 16 + 16] = 0
    spec = ViTSpec(48, tuple(ViTBlockSpec(3, 8, 16, 192) for _ in range(2)), patch_size=8, resolution=32, num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        scaled = load_timm_weights(build_model(spec).eval(), src, rescale_qk=True)
        assert torch.allclose(scaled(x), src(x), atol=1e-5)
        plain = load_timm_weights(build_model(spec).eval(), src)
        assert not torch.allclose(plain(x), src(x), atol=1e-3)


def test_slicing_composes_through_a_heterogeneous_model() -> None:
    """timm -> heterogeneous -> smaller equals timm -> smaller with the composed indices."""
    src = random_timm_vit()
    mid_keep = {"embed": list(range(8, 48)), "heads": [[1, 2], [0, 1, 2]], "qk": [list(range(2, 14)), None]}
    mid_spec = ViTSpec(40, (ViTBlockSpec(2, 12, 16, 192), ViTBlockSpec(3, 16, 16, 192)), patch_size=8, resolution=32,
                       num_classes=10)
    mid = load_timm_weights(build_model(mid_spec), src, keep=mid_keep)
    small_keep = {"embed": list(range(1, 33)), "heads": [[1, 0], [2, 0, 1]], "qk": [[0, 2, 4, 6, 8, 10, 11, 9], None]}
    small_spec = ViTSpec(32, (ViTBlockSpec(2, 8, 12, 100), ViTBlockSpec(3, 16, 16, 192)), patch_size=8, resolution=32,
                         num_classes=10)
    via_mid = load_timm_weights(build_model(small_spec), mid, keep=small_keep)
    composed = {"embed": list(range(9, 41)), "heads": [[2, 1], [2, 0, 1]], "qk": [[2, 4, 6, 8, 10, 12, 13, 11], None]}
    direct = load_timm_weights(build_model(small_spec), src, keep=composed)
    for key, value in direct.state_dict().items():
        assert torch.equal(value, via_mid.state_dict()[key]), key


@pytest.mark.parametrize("make_src, spec, kwargs, match", [
    (lambda: random_timm_vit(depth=3), None, {}, "depths must be equal"),
    (lambda: random_timm_vit(init_values=1e-5), None, {}, r"ls1\.gamma"),
    (lambda: random_timm_vit(reg_tokens=2), None, {}, "reg_token"),
    (lambda: random_timm_vit(), SMALL.replace(embed_dim=64), {}, "keep.embed.*only 48"),
    (lambda: random_timm_vit(), SMALL, dict(keep={"embed": [0] * 32}), "distinct"),
    (lambda: random_timm_vit(), SMALL, dict(keep={"mlp": [None]}), "one index set per block"),
    (lambda: random_timm_vit(), SMALL, dict(keep={"emb": None}), "unknown structures"),
    (lambda: random_timm_vit(), SMALL.replace(num_classes=5), {}, "head=False"),
    (lambda: random_timm_vit(), SMALL.replace(resolution=40), {}, "position embedding"),
    (lambda: random_timm_vit(), SMALL.replace(patch_size=4), {}, "patch embedding"),
    (lambda: random_timm_vit(class_token=False), None, {}, "lacks.*fc_norm"),
])
def test_loading_refuses_what_it_cannot_map(make_src, spec, kwargs: dict, match: str) -> None:
    src = make_src()
    target = build_model(spec or same_dims(random_timm_vit()))
    with pytest.raises(SpecError, match=match):
        load_timm_weights(target, src, **kwargs)


def test_head_false_keeps_the_targets_classifier() -> None:
    src = random_timm_vit()
    target = build_model(SMALL.replace(num_classes=5))
    before = target.head.weight.detach().clone()
    load_timm_weights(target, src, head=False)
    assert torch.equal(target.head.weight, before)
    assert torch.equal(target.pos_embed, src.pos_embed[:, :, :32])


def test_missing_qkv_bias_loads_as_zero() -> None:
    src = random_timm_vit(qkv_bias=False)
    model = load_timm_weights(build_model(same_dims(src)).eval(), src)
    assert not model.blocks[0].attn.qkv.bias.any()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), src(x), atol=1e-5)



@pytest.mark.slow
def test_deit_tiny_loads_whole_and_pruned(unfused_timm: None) -> None:
    """A real timm DeiT-T (random weights): reproduced exactly, then sliced to an NViT-like shape."""
    torch.manual_seed(0)
    src = timm.create_model("deit_tiny_patch16_224").eval()
    x = torch.randn(1, 3, 224, 224)
    whole = load_timm_weights(build_model(ViTSpec.uniform(**DEIT["deit_tiny"])).eval(), src)
    with torch.no_grad():
        assert torch.allclose(whole(x), src(x), atol=1e-4)
    pruned_spec = ViTSpec(176, tuple(ViTBlockSpec(2 + i % 2, 48, 64 - 8 * (i % 3), 528 + 16 * i) for i in range(12)))
    pruned = load_timm_weights(build_model(pruned_spec).eval(), src, rescale_qk=True)
    assert pruned(x).shape == (1, 1000)
    assert torch.equal(pruned.blocks[5].mlp.fc1.weight, src.blocks[5].mlp.fc1.weight[:608, :176])
