"""Built modules: registries, timm's model API, spec forms, measurement helpers and ONNX export."""

from __future__ import annotations

import warnings

import pytest
import timm
import torch
from torch import nn

import archsearch.models as models
from archsearch.models import (
    ArchsearchCNN, archsearch_cnn, build_model, count_macs, count_params, export_onnx, get_block, get_builder,
    list_blocks, list_builders, measured_costs, register_block, register_builder,
)
from archsearch.models._registry import register_timm_model
from archsearch.models.cnn import BasicBlock, Bottleneck
from archsearch.cost import costs
from archsearch.errors import SpecError, UnknownNameError
from archsearch.space import CNNSpec, StageSpec, StemSpec


# registries


def test_registries_list_their_entries() -> None:
    assert "cnn" in list_builders()
    assert {"basic", "k1dwk1", "k1kxk1"} <= set(list_blocks())
    assert get_block("k1kxk1") is Bottleneck and get_block("basic") is BasicBlock
    assert "archsearch_cnn" in timm.list_models("archsearch*")


def test_unknown_names_list_the_registered_ones() -> None:
    with pytest.raises(UnknownNameError, match=r"'no-such-family'.*\['cnn'"):
        get_builder("no-such-family")
    with pytest.raises(UnknownNameError, match=r"'k3'.*\['basic', 'k1dwk1', 'k1kxk1'"):
        get_block("k3")


def test_duplicate_registration_raises() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_block("k1kxk1")(type("Other", (nn.Module,), {}))
    with pytest.raises(ValueError, match="already registered"):
        register_builder("cnn")(lambda spec: spec)

    def archsearch_cnn(pretrained: bool = False, **kwargs: object) -> nn.Module:  # same name, other origin
        raise NotImplementedError

    with pytest.raises(ValueError, match="timm already has"):
        register_timm_model(archsearch_cnn)


def test_registering_the_same_definition_again_is_silent() -> None:
    """What a second import (or a reload) of the model modules does."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert register_block("k1kxk1")(Bottleneck) is Bottleneck
        assert register_timm_model(archsearch_cnn) is archsearch_cnn
    assert timm.models.model_entrypoint("archsearch_cnn") is archsearch_cnn


def test_space_and_cost_do_not_import_models() -> None:
    import subprocess
    import sys

    code = "import sys, archsearch.space, archsearch.cost; print('torch' in sys.modules, 'archsearch.models' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# spec forms and errors


def test_spec_forms_build_the_same_model(tiny_cnn_spec: CNNSpec, tmp_path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(tiny_cnn_spec.to_json())
    forms = [tiny_cnn_spec, tiny_cnn_spec.to_dict(), tiny_cnn_spec.to_json(), str(path), path]
    for form in forms:
        model = timm.create_model("archsearch_cnn", spec=form)
        assert isinstance(model, ArchsearchCNN)
        assert model.spec == tiny_cnn_spec
    assert build_model(str(path)).spec == tiny_cnn_spec


def test_timm_overrides_update_the_spec(tiny_cnn_spec: CNNSpec) -> None:
    model = timm.create_model("archsearch_cnn", spec=tiny_cnn_spec, num_classes=3, in_chans=1)
    assert model.spec == tiny_cnn_spec.replace(num_classes=3, stem=StemSpec(8, in_channels=1))
    assert model.pretrained_cfg["input_size"] == (1, 33, 33)
    assert model(torch.randn(2, 1, 33, 33)).shape == (2, 3)
    assert count_params(model) == costs(model.spec)["params_with_head"]


def test_bad_arguments_raise_spec_errors(tiny_cnn_spec: CNNSpec) -> None:
    with pytest.raises(SpecError, match="expected spec="):
        timm.create_model("archsearch_cnn")
    with pytest.raises(SpecError, match="pretrained=True"):
        timm.create_model("archsearch_cnn", spec=tiny_cnn_spec, pretrained=True)
    with pytest.raises(SpecError, match="num_classes"):
        timm.create_model("archsearch_cnn", spec=tiny_cnn_spec, num_classes=-1)
    with pytest.raises(SpecError, match="got int"):
        build_model(3)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="file not found"):
        build_model("no/such/spec.json")


@pytest.mark.parametrize("block", ["k1kxk1", "basic"])
def test_resnet_blocks_refuse_se_that_the_cost_model_does_not_count(block: str) -> None:
    with pytest.raises(SpecError, match="only offered for the k1dwk1 block"):
        StageSpec(block, 8, 8, bottleneck=4, se=True)
    with pytest.raises(SpecError, match=f"the {block} block has no squeeze-excitation"):
        get_block(block)(8, 8, bottleneck=4, se=True)


@pytest.mark.parametrize("block", ["k1kxk1", "basic"])
def test_forced_projection_shortcut_is_built_on_the_first_block_only(block: str) -> None:
    spec = CNNSpec(
        stem=StemSpec(out_channels=16, stride=2),
        stages=(StageSpec(block, 16, 16, bottleneck=8, stride=1, depth=3, shortcut="conv"),),
        resolution=17, num_classes=3,
    )
    model = build_model(spec)
    kinds = [type(blk.shortcut).__name__ for blk in model.stages[0]]
    assert kinds == ["ConvNormAct", "Identity", "Identity"]
    proj = model.stages[0][0].shortcut
    conv = proj.conv
    assert (conv.kernel_size, conv.stride, conv.in_channels, conv.out_channels) == ((1, 1), (1, 1), 16, 16)
    auto = build_model(spec.replace(stages=(StageSpec(block, 16, 16, bottleneck=8, stride=1, depth=3),)))
    assert isinstance(auto.stages[0][0].shortcut, nn.Identity)
    extra = 16 * 16 + 2 * 16  # the 1x1 conv and its BatchNorm
    assert count_params(model) - count_params(auto) == extra == costs(spec)["params"] - costs(auto.spec)["params"]
    assert model(torch.randn(2, 3, 17, 17)).shape == (2, 3)


def test_shortcut_option_is_refused_where_it_has_no_meaning() -> None:
    with pytest.raises(SpecError, match=r"stage.shortcut: 'conv' is offered for the k1kxk1 and basic blocks, not k1dwk1"):
        StageSpec("k1dwk1", 8, 8, bottleneck=16, shortcut="conv")
    with pytest.raises(SpecError, match=r"stage.shortcut: expected one of \['auto', 'conv', 'pool'\], got 'always'"):
        StageSpec("k1kxk1", 8, 8, bottleneck=4, shortcut="always")
    with pytest.raises(SpecError, match=r"stage.shortcut: 'pool' is offered for the k1dwk1 block only, not 'k1kxk1'"):
        StageSpec("k1kxk1", 8, 8, bottleneck=4, shortcut="pool")
    with pytest.raises(SpecError, match="k1dwk1 block has the 'auto' and 'pool' shortcuts"):
        get_block("k1dwk1")(8, 8, bottleneck=16, shortcut="conv")
    with pytest.raises(SpecError, match="shortcut: expected one of"):
        get_block("k1kxk1")(8, 8, bottleneck=4, shortcut="identity")


# timm's model API


def test_forward_and_head_api(tiny_cnn_spec: CNNSpec) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_cnn_spec).eval()
    x = torch.randn(2, 3, 33, 33)
    side = model.pretrained_cfg["pool_size"][0]
    assert model.num_classes == 7 and model.num_features == 24
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 24, side, side) == (2, 24, 5, 5)
        logits = model(x)
        assert logits.shape == (2, 7)
        torch.testing.assert_close(model.forward_head(feats), logits)
        pooled = model.forward_head(feats, pre_logits=True)
        torch.testing.assert_close(pooled, feats.mean((2, 3)))
        torch.testing.assert_close(model.get_classifier()(pooled), logits)

        model.reset_classifier(0)
        assert model.num_classes == 0 and model.spec.num_classes == 0
        assert isinstance(model.get_classifier(), nn.Identity)
        torch.testing.assert_close(model(x), pooled)

        model.reset_classifier(4)
        assert model(x).shape == (2, 4) and model.spec.num_classes == 4
        model.reset_classifier(0, global_pool="")
        assert model(x).shape == feats.shape


def test_pretrained_cfg_describes_the_model(tiny_cnn_spec: CNNSpec) -> None:
    model = timm.create_model("archsearch_cnn", spec=tiny_cnn_spec)
    cfg = model.pretrained_cfg
    assert model.default_cfg is cfg
    assert cfg["architecture"] == "archsearch_cnn"
    assert cfg["input_size"] == (3, 33, 33) and cfg["num_classes"] == 7 and cfg["pool_size"] == (5, 5)
    assert isinstance(model.get_submodule(cfg["first_conv"]), nn.Conv2d)
    assert model.get_submodule(cfg["classifier"]) is model.get_classifier()
    assert build_model(tiny_cnn_spec).pretrained_cfg == cfg


def test_features_only(tiny_cnn_spec: CNNSpec) -> None:
    model = timm.create_model("archsearch_cnn", spec=tiny_cnn_spec, features_only=True)
    feats = model(torch.randn(1, 3, 33, 33))
    assert [f.shape[1] for f in feats] == model.feature_info.channels() == [8, 16, 24, 24]
    assert [f.shape[-1] for f in feats] == [17, 9, 5, 5]
    assert model.feature_info.reduction() == [2, 4, 8, 8]


def test_features_only_with_the_max_pool_stem() -> None:
    """The stem feature is taken before the max-pool, as timm's resnet (``act1``, reduction 2) does."""
    spec = CNNSpec(
        stem=StemSpec(out_channels=8, kernel=7, stride=2, pool=True),
        stages=(StageSpec("basic", 8, 8, bottleneck=8, stride=1), StageSpec("basic", 8, 16, bottleneck=16, stride=2)),
        resolution=33, num_classes=4,
    )
    model = timm.create_model("archsearch_cnn", spec=spec, features_only=True)
    feats = model(torch.randn(1, 3, 33, 33))
    assert [f.shape[1] for f in feats] == model.feature_info.channels() == [8, 8, 16]
    assert [f.shape[-1] for f in feats] == [17, 9, 5]
    assert model.feature_info.reduction() == [2, 4, 8]
    full = build_model(spec)
    assert full.pretrained_cfg["pool_size"] == (5, 5)
    assert full(torch.randn(2, 3, 33, 33)).shape == (2, 4)


def test_training_step_with_grad_checkpointing(tiny_cnn_spec: CNNSpec) -> None:
    model = build_model(tiny_cnn_spec, drop_rate=0.1)
    model.set_grad_checkpointing()
    loss = nn.functional.cross_entropy(model(torch.randn(2, 3, 33, 33)), torch.tensor([0, 6]))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert set(model.group_matcher()) == {"stem", "blocks"}


# measurement helpers


def test_count_macs_leaves_a_real_model_unchanged(tiny_cnn_spec: CNNSpec) -> None:
    model = build_model(tiny_cnn_spec).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    macs = count_macs(model, 33)
    assert macs == measured_costs(tiny_cnn_spec)["measured_macs_with_head"] == costs(tiny_cnn_spec)["macs_with_head"]
    assert model.training
    after = model.state_dict()
    assert all(after[k].device.type == "cpu" and torch.equal(after[k], v) for k, v in before.items())


def test_measured_costs_counts_a_meta_model(tiny_cnn_spec: CNNSpec) -> None:
    with torch.device("meta"):
        model = build_model(tiny_cnn_spec)
    assert all(p.is_meta for p in model.parameters())
    c = costs(tiny_cnn_spec)
    assert count_params(model) == c["params_with_head"]
    assert count_macs(model, 33) == c["macs_with_head"]
    assert measured_costs(tiny_cnn_spec.to_json()) == {
        "measured_params": c["params"], "measured_macs": c["macs"],
        "measured_params_with_head": c["params_with_head"], "measured_macs_with_head": c["macs_with_head"],
    }


# export


def test_onnx_export_passes_the_checker(tiny_cnn_spec: CNNSpec, tmp_path) -> None:
    onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install 'archsearch[onnx]')")
    model = build_model(tiny_cnn_spec).train()
    path = export_onnx(model, tmp_path / "tiny.onnx", resolution=33)
    assert model.training
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == "input" and [d.dim_value for d in inp.type.tensor_type.shape.dim[1:]] == [3, 33, 33]
    assert out.type.tensor_type.shape.dim[1].dim_value == 7


def test_public_names_are_exported() -> None:
    for name in models.__all__:
        assert hasattr(models, name), name


# the deprecated alias archsearch.build (the package's former name)


def test_build_alias_warns_at_the_importing_line(tmp_path) -> None:
    import subprocess
    import sys

    script = tmp_path / "old_user.py"
    script.write_text("import archsearch.build.cnn\nfrom archsearch.build.vit import load_timm_weights\n")
    proc = subprocess.run(
        [sys.executable, "-W", "always:archsearch.build is deprecated:DeprecationWarning", str(script)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "archsearch.build is deprecated" in line]
    # once (the package imports once), attributed to the user's line, naming the new package
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{script}:1: DeprecationWarning") and "import archsearch.models" in lines[0]


def test_build_alias_gives_the_same_objects(tiny_cnn_spec: CNNSpec) -> None:
    import importlib
    import pkgutil
    import sys

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import archsearch.build as old
        import archsearch.build.cnn as old_cnn
        from archsearch.build.vit import load_timm_weights as old_load
    import archsearch.models.cnn
    from archsearch.models.vit import load_timm_weights

    assert old.__all__ == models.__all__
    assert all(getattr(old, name) is getattr(models, name) for name in models.__all__)
    assert old_cnn is archsearch.models.cnn and old.cnn is archsearch.models.cnn and old_load is load_timm_weights
    for info in pkgutil.iter_modules(models.__path__):  # every submodule, private ones too (pickles name them)
        new = importlib.import_module(f"archsearch.models.{info.name}")
        assert sys.modules[f"archsearch.build.{info.name}"] is new
        assert importlib.import_module(f"archsearch.build.{info.name}") is new
    assert type(old.build_model(tiny_cnn_spec)) is ArchsearchCNN
