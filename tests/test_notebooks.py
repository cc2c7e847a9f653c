"""The analysis notebooks run top to bottom (nbclient, a real kernel) on tiny runs made by the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from _report_runs import validated_run  # noqa: F401  (fixture)

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def execute(name: str, tmp_path: Path) -> "object":
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert nb.cells[1].metadata.get("tags") == ["parameters"]  # papermill-style: the environment sets them
    # run from the repository root so the kernel imports this checkout's archsearch
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS.parent)}}).execute()
    nbformat.write(nb, tmp_path / name)  # the executed copy, for a look when a test fails
    return nb


def outputs(nb: "object") -> str:
    text = []
    for cell in nb.cells:  # type: ignore[attr-defined]
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", out
            text.append(out.get("text", "") + str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(text)


def test_01_solve_and_compare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHSEARCH_NB_SPACE", "tinyvit")
    monkeypatch.setenv("ARCHSEARCH_NB_FACTORS", "0.5,1.0")
    monkeypatch.setenv("ARCHSEARCH_NB_TIME_LIMIT", "5")
    nb = execute("01_solve_and_compare.ipynb", tmp_path)
    text = outputs(nb)
    assert "x0.5 macs=1.008G,params=5.498M: optimal" in text and "x1 macs=2.016G,params=11M: optimal" in text
    assert "TinyViT-21M" in text and "DeepMAD-R50" in text and "DeiT-B" in text and "Wu et al." in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]  # type: ignore[attr-defined]
    assert len(images) == 2


def test_02_entropy_vs_accuracy(validated_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from scipy import stats

    from archsearch.results import load_validation

    monkeypatch.setenv("ARCHSEARCH_NB_RUN", str(validated_run.path))
    nb = execute("02_entropy_vs_accuracy.ipynb", tmp_path)
    text = outputs(nb)
    results = load_validation(validated_run.path).results
    rho = stats.spearmanr(results["score"], results["top1"]).statistic
    assert f"digits/quick: Spearman rho = {rho:.3f} over 3 candidates" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]  # type: ignore[attr-defined]
    assert len(images) == 1
