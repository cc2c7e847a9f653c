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
    """The tiny run holds two trainings: 3 designs x 1 seed (2 epochs of 3 batches), 2 designs x 2 seeds (1 epoch
    of 2 batches); each gets its own correlation over designs. No study: one line says so."""
    from scipy import stats

    from archsearch.results import load_validation

    monkeypatch.setenv("ARCHSEARCH_NB_RUN", str(validated_run.path))
    monkeypatch.setenv("ARCHSEARCH_NB_STUDY", str(tmp_path / "no-study"))
    nb = execute("02_entropy_vs_accuracy.ipynb", tmp_path)
    text = outputs(nb)
    results = load_validation(validated_run.path).results
    longer = results[results["epochs"] == 2]
    rho = stats.spearmanr(longer["score"], longer["top1"]).statistic
    assert f"digits/quick, 2 epochs, 3 batches an epoch: Spearman rho = {rho:.3f} over 3 designs (1 seed each)" in text
    assert "digits/quick, 1 epoch, 2 batches an epoch: Spearman rho = nan over 2 designs (2 seeds each)" in text
    assert f"{tmp_path / 'no-study' / 'results.csv'}: not found" in text and "study " not in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]  # type: ignore[attr-defined]
    assert len(images) == 1


def test_02_reads_the_search_quality_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hand-written results.csv: seeds averaged per design within its budget and kind (names repeat across
    budgets), Spearman over designs overall and per budget, a smoke training apart; no run: one line says so."""
    import pandas as pd
    from scipy import stats

    rows = []
    for budget, scale in (("1M", 1.0), ("4M", 2.0)):
        for kind, design, score, tops in (("designed", "deepmad-fmnist-1", 10, (0.86, 0.88)),
                                          ("baseline", "base", 8, (0.85, 0.86)),
                                          ("random", "deepmad-fmnist-random-1", 6, (0.87,)),
                                          ("random", "deepmad-fmnist-random-2", 4, (0.80,))):
            for seed, top1 in enumerate(tops):
                rows.append({"budget": budget, "kind": kind, "design": design, "seed": seed, "macs": 1e6 * scale,
                             "params": 5e4 * scale, "score": score * scale, "top1": top1 + scale / 100, "epochs": 4,
                             "max_batches": None, "train_time_s": 1.0})
    rows += [{**rows[0], "budget": "16M", "seed": s, "max_batches": 200, "top1": 0.9 + s / 100} for s in (0, 1)]
    study = tmp_path / "study"
    study.mkdir()
    pd.DataFrame(rows).to_csv(study / "results.csv", index=False)
    monkeypatch.setenv("ARCHSEARCH_NB_RUN", str(tmp_path / "no-run"))
    monkeypatch.setenv("ARCHSEARCH_NB_STUDY", str(study))
    nb = execute("02_entropy_vs_accuracy.ipynb", tmp_path)
    text = outputs(nb)
    assert f"{tmp_path / 'no-run'}: no validated run here" in text
    full = pd.DataFrame(rows[:-2]).groupby(["budget", "kind", "design"]).agg(score=("score", "first"), top1=("top1", "mean"))
    assert len(full) == 8
    rho = stats.spearmanr(full["score"], full["top1"]).statistic
    assert f"study 4 epochs, budget all: Spearman rho = {rho:.3f} over 8 designs (1 to 2 seeds a design)" in text
    for budget in ("1M", "4M"):
        part = full.loc[budget]
        rho = stats.spearmanr(part["score"], part["top1"]).statistic
        assert f"study 4 epochs, budget {budget}: Spearman rho = {rho:.3f} over 4 designs (1 to 2 seeds a design)" in text
    assert "study 4 epochs, 200 batches an epoch, budget all: Spearman rho = nan over 1 design (2 seeds each)" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]  # type: ignore[attr-defined]
    assert len(images) == 1
