"""Shared fixtures."""

import pytest

from archsearch.space import CNNSpec, StageSpec, StemSpec


@pytest.fixture
def tiny_cnn_spec() -> CNNSpec:
    """Both block types, SE, strides 1 and 2, a shortcut conv and an odd resolution, in a few kFLOPs."""
    return CNNSpec(
        stem=StemSpec(out_channels=8, kernel=3, stride=2),
        stages=(
            StageSpec("k1kxk1", in_channels=8, out_channels=16, bottleneck=8, kernel=3, stride=2, depth=2),
            StageSpec("k1dwk1", in_channels=16, out_channels=24, bottleneck=32, kernel=5, stride=2, depth=2, se=True),
            StageSpec("k1dwk1", in_channels=24, out_channels=24, bottleneck=48, kernel=3, stride=1, depth=1),
        ),
        resolution=33,
        num_classes=7,
        name="tiny",
    )


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Latency calibrations of a test go to a fresh cache, never the user's."""
    monkeypatch.setenv("ARCHSEARCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("ARCHSEARCH_LATENCY_DEVICE", raising=False)
