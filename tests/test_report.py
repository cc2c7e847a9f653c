"""`archsearch report`: the data it computes, the HTML it writes (self-contained, escaped), the hints
of `solve` and `validate`, and the page as headless Chromium renders it."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _browser import Page, can_install_chromium, chromium_path, overlaps, plot_labels
from _report_runs import HOSTILE, cli, solved_runs, validated_run  # noqa: F401  (fixtures)
from archsearch.results import arch_units, report_data
from archsearch.space import spec_from_dict


def n_candidates(run: str | Path) -> int:
    return len(json.loads((Path(run) / "candidates.json").read_text())["candidates"])


def test_report_data(solved_runs: dict) -> None:  # noqa: F811
    data = report_data([r.path for r in solved_runs.values()])
    assert list(data.runs["name"]) == [HOSTILE, "tinyvit-macs2.016G-params11M", "deepmad-cifar-macs8M-params200K"]
    assert set(data.runs["status"]) <= {"optimal", "feasible"}
    assert data.runs["command"].iloc[1] == "archsearch solve --space tinyvit --top-k 4 --out " + str(solved_runs["tinyvit"].path) + " --format json"
    assert all("archsearch" in v and "python" in v for v in data.runs["versions"])
    assert list(data.runs["sweep"]) == [0, 0, 2] and len(data.sweeps) == 2
    cands = data.candidates
    assert len(cands) == 5 + 4 + n_candidates(solved_runs["cnn"].path) and set(cands["family"]) == {"vit", "tinyvit", "cnn"}
    assert (cands["pareto"] == (cands["front"] == 1)).all() and cands["front"].min() == 1
    assert {k[0] for k in data.fronts} == set(cands["objective"]) and {k[1] for k in data.fronts} == {"macs", "params"}
    for (objective, cost), front in data.fronts.items():
        group = cands[cands["objective"] == objective]
        best = group.loc[group["score"].idxmax()]
        assert front.ys[-1] == best["score"] and front.hypervolume >= 0  # the best score ends every front
        assert front.xs == sorted(front.xs) and all(i in group.index for i in front.index)
    names = set(data.references["name"])
    assert {"DeiT-T", "TinyViT-5M", "DeepMAD-R50"} <= names and len(names) == 9
    assert data.validation is None


def test_arch_units_of_every_family(solved_runs: dict) -> None:  # noqa: F811
    from archsearch.space.tinyvit import TINYVIT_5M

    data = report_data([r.path for r in solved_runs.values()])
    for spec_dict in data.candidates["spec"]:
        spec = spec_from_dict(spec_dict)
        units = arch_units(spec)
        assert units and all(u.width > 0 and u.depth >= 1 for u in units)
        if spec.family == "cnn":
            assert [u.width for u in units[1:]] == [s.out_channels for s in spec.stages]
            assert [u.depth for u in units[1:]] == [s.depth for s in spec.stages]
        if spec.family == "vit":
            assert [u.width for u in units] == [b.mlp_dim for b in spec.blocks]
    assert [(u.width, u.depth) for u in arch_units(TINYVIT_5M)] == [(64, 2), (128, 2), (160, 6), (320, 2)]


@pytest.fixture(scope="module")
def full_report(solved_runs: dict, validated_run, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path, dict]:  # noqa: F811
    """The report of every solved run and the validated run, written by `archsearch report --format json`."""
    runs = [str(r.path) for r in solved_runs.values()] + [str(validated_run.path)]
    out = tmp_path_factory.mktemp("report") / "sub" / "report.html"
    res = cli("report", *runs, "-o", str(out), "--format", "json")
    assert res.code == 0, res.stderr
    return runs, out, json.loads(res.stdout)


def test_report_cli_writes_one_self_contained_escaped_file(full_report: tuple, tmp_path: Path) -> None:
    runs, out, info = full_report
    html = out.read_text()
    assert info["path"] == str(out) and info["bytes"] == len(html.encode())
    # self-contained: no stylesheet, script, image or frame from elsewhere; links only to anchors
    assert not re.search(r"<(link|img|iframe|object|embed)\b", html)
    assert not re.search(r"""\b(src|href)\s*=\s*["'](?!#)""", html)
    assert "@import" not in html and not re.search(r"url\((?!#)", html)
    assert html.count("<script") == 1  # the table sorter, nothing else
    # a hostile run name is text, in the tables and inside matplotlib's SVG legends alike
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # costs, a front per objective (4), the sweep, a validated front per training (2), curves; a diagram per candidate
    assert html.count("<svg") == 1 + 4 + 1 + 2 + 1 + sum(n_candidates(r) for r in runs)
    assert "DeiT-T" in html and "TinyViT-5M" in html and "DeepMAD-R50" in html and "Touvron" in html
    # deterministic: the same runs give the same file
    again = tmp_path / "again.html"
    assert cli("report", *runs, "-o", str(again)).code == 0
    assert again.read_text() == html


def test_report_with_validation(validated_run, full_report: tuple) -> None:  # noqa: F811
    data = report_data([validated_run.path])
    assert data.validation is not None
    res, curves = data.validation
    # one row per training: 3 designs x 1 seed (2 epochs x 3 batches), 2 designs x 2 seeds (1 epoch x 2 batches)
    assert sorted(res["name"]) == ["mid", "narrow", "narrow", "narrow", "wide", "wide", "wide"]
    assert set(res["kind"]) == {"designed"} and len(curves) == 3 * 2 + 4 * 1
    long, short = data.validated  # the longer training first
    assert long.label == "digits/quick, 2 epochs, 3 batches an epoch" and long.training["max_batches"] == 3
    assert short.label == "digits/quick, 1 epoch, 2 batches an epoch"
    assert sorted(long.designs["name"]) == ["mid", "narrow", "wide"] and (long.designs["seeds"] == 1).all()
    assert long.costs == ("macs", "params", "latency_ms") and (long.designs["latency_ms"] > 0).all()
    assert short.costs == ("macs", "params")  # trained --no-latency
    assert sorted(short.designs["name"]) == ["narrow", "wide"] and (short.designs["seeds"] == 2).all()
    for row in short.designs.itertuples():
        tops = res.loc[(res["name"] == row.name) & (res["epochs"] == 1), "top1"]
        assert row.top1 == pytest.approx(tops.mean()) and row.top1_std == pytest.approx(tops.std(ddof=1))
        assert row.seed_list == [0, 1]
    assert long.designs["pareto"].any() and short.designs["pareto"].any() and len(long.references) == 0
    html = full_report[1].read_text()
    assert 'id="validation"' in html and "test top-1" in html and "training loss" in html
    table = html[html.index('id="validation-table"'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr") == 8 and "narrow" in table and "wide" in table and "skipped" not in table
    only_solved = cli("report", str(full_report[0][0]), "-o", str(full_report[1].with_name("solved.html")))
    assert only_solved.code == 0 and 'id="validation"' not in full_report[1].with_name("solved.html").read_text()


def test_validated_front_section(validated_run, full_report: tuple) -> None:  # noqa: F811
    """A figure and a sortable table per training; seeds shown as mean ± std; names link to their architecture."""
    html = full_report[1].read_text()
    data = report_data([validated_run.path])
    for i, front in enumerate(data.validated, 1):
        head = html.index(f'id="validated-{i}"')
        section = html[head:html.index("</table>", head)]
        assert f"Validated front: {front.label}" in section and '<figure class="plot validated-front"><svg' in section
        assert "Pareto-optimal" in section and "validated front: " + front.label in section  # legend and title, as SVG text
        assert f'<table class="sortable validated-table" id="validated-{i}-table">' in section
        assert section.count("<tr") == 1 + len(front.designs) and section.count(">yes</td>") == front.designs["pareto"].sum()
        assert ("<th>latency</th>" in section) == ("latency_ms" in front.costs)
        for row in front.designs.itertuples():
            text = f"{100 * row.top1:.2f} ± {100 * row.top1_std:.2f}%" if row.seeds > 1 else f"{100 * row.top1:.2f}%"
            assert f'data-sort="{row.top1!r}">{text}</td>' in section
            assert f'title="seeds {", ".join(map(str, row.seed_list))}">{row.seeds}</td>' in section
        assert re.search(r'<a href="#cand-\d+">narrow</a>', section)
    assert "error bars: ± one standard deviation over the seeds" in html


def _trials(**common: object) -> list[dict]:
    """Hand-made trials of one training: A twice (seeds 0, 1), B, C, D once; B dominates C; A, B, D are the Pareto set."""
    rows = [("A", "designed", 0, 0.80, 10, 5), ("A", "designed", 1, 0.84, 10, 5), ("B", "baseline", 0, 0.80, 8, 6),
            ("C", "random", 0, 0.78, 9, 7), ("D", "random", 0, 0.83, 12, 9)]
    return [{"run": f"run-{kind}", "name": name, "kind": kind, "design": name, "seed": seed, "top1": top1, "macs": macs,
             "params": params, "family": "cnn", "score": 1.0, **common} for name, kind, seed, top1, macs, params in rows]


def test_validated_fronts_aggregate_seeds_and_keep_trainings_apart() -> None:
    import pandas as pd

    from archsearch.results import validated_fronts

    full = dict(dataset="digits", recipe="quick", epochs=4, max_batches=None, distill=None)
    smoke = {**full, "max_batches": 3.0}  # NaN beside 3.0 in one column, as pandas reads a mixed study
    frame = pd.DataFrame(_trials(**smoke) + _trials(**full))
    fronts = validated_fronts(frame)
    assert [f.label for f in fronts] == ["digits/quick, 4 epochs", "digits/quick, 4 epochs, 3 batches an epoch"]
    assert fronts[1].training == {**full, "max_batches": 3}
    for front in fronts:
        d = front.designs.set_index("name")
        assert list(d.index) == ["D", "A", "B", "C"]  # one row per design, best mean top-1 first
        assert d.loc["A", "top1"] == pytest.approx(0.82) and d.loc["A", "top1_std"] == pytest.approx(0.02 * 2 ** 0.5)
        assert d.loc["A", "seeds"] == 2 and d.loc["A", "seed_list"] == [0, 1] and np.isnan(d.loc["B", "top1_std"])
        assert dict(d["kind"]) == {"A": "designed", "D": "random", "B": "baseline", "C": "random"}
        assert dict(d["pareto"]) == {"A": True, "D": True, "B": True, "C": False}
        assert front.costs == ("macs", "params") and len(front.references) == 0
        macs, params = front.fronts["macs"], front.fronts["params"]
        assert list(zip(macs.xs, macs.ys)) == [(8, 0.80), (10, pytest.approx(0.82)), (12, 0.83)]
        assert list(zip(params.xs, params.ys)) == [(5, pytest.approx(0.82)), (9, 0.83)]  # B's 0.80 at 6 is beaten by A
        assert [front.designs["name"][i] for i in params.index] == ["A", "D"]
    # a study from before seeds and kinds: every row its own design, "designed", one seed
    old = pd.DataFrame([{k: v for k, v in t.items() if k not in ("kind", "design", "seed")} | {"seed": None}
                        for t in _trials(dataset="digits", recipe="quick")[1:]])
    (front,) = validated_fronts(old.drop(columns=["seed"]))
    assert set(front.designs["kind"]) == {"designed"} and (front.designs["seeds"] == 1).all() and len(front.designs) == 4
    assert front.label == "digits/quick"


def test_validated_front_with_latency_and_published_models() -> None:
    """Published top-1 figures are ImageNet's: they join a front trained on ImageNet, never one on digits."""
    from archsearch.report.plots import validated_front_svg
    from archsearch.results import reference_frame, validated_fronts

    import pandas as pd

    scale = {"macs": 1e8, "params": 1e6}  # within 2x of DeepMAD-R18 (1.82G MACs, 11.69M params), not of R34 or R50
    trials = [t | {k: t[k] * scale[k] for k in scale} | {"latency_ms": t["macs"] / 10}
              for t in _trials(dataset="imagenet", recipe="imagenet", epochs=90)]
    refs = reference_frame(families={"cnn"})
    (front,) = validated_fronts(pd.DataFrame(trials), references=refs)
    assert front.costs == ("macs", "params", "latency_ms")
    assert list(front.references["name"]) == ["DeepMAD-R18"] and front.references["top1"].iloc[0] == pytest.approx(0.777)
    svg = validated_front_svg(front)
    assert svg.count("latency (ms)") == 1 and "DeepMAD-R18 (backbone)" in svg and "published" in svg
    assert "designed (1)" in svg and "baseline (1)" in svg and "random (2)" in svg and "Pareto-optimal" in svg
    (digits,) = validated_fronts(pd.DataFrame([t | {"dataset": "digits"} for t in trials]), references=refs)
    assert len(digits.references) == 0


def test_validated_front_axis_stops_at_100() -> None:
    """A top-1 near 100 % leaves no axis (and no tick label) above 100."""
    import re

    from archsearch.report.plots import validated_front_svg
    from archsearch.results import validated_fronts

    import pandas as pd

    trials = [t | {"top1": 0.97 + 0.01 * i} for i, t in enumerate(_trials(dataset="digits", recipe="quick"))]
    (front,) = validated_fronts(pd.DataFrame(trials))
    svg = validated_front_svg(front)
    ticks = [float(v) for v in re.findall(r">\s*(\d+(?:\.\d+)?)\s*</text>", svg)]
    assert ticks and max(t for t in ticks if 90 <= t < 1000) <= 100


def test_report_keeps_the_design_walls(solved_runs: dict, tmp_path: Path) -> None:  # noqa: F811
    """results computes without matplotlib or torch; report renders without torch, solvers, train or models."""
    runs = [str(r.path) for r in solved_runs.values()]
    code = f"""
import sys
from archsearch.results import report_data
report_data({runs!r})
assert not {{'matplotlib', 'torch'}} & set(sys.modules), 'results imported matplotlib or torch'
from archsearch.cli.main import main
assert main(['report', *{runs!r}, '-o', {str(tmp_path / 'r.html')!r}]) == 0
bad = [m for m in ('torch', 'timm', 'archsearch.solvers', 'archsearch.train', 'archsearch.models', 'archsearch.build') if m in sys.modules]
assert not bad, bad
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr


def test_solve_and_validate_print_the_report_command(solved_runs: dict, validated_run) -> None:  # noqa: F811
    res = solved_runs["tinyvit"]
    json.loads(res.stdout)  # the hint never enters JSON stdout
    assert f"report: archsearch report {res.path} -o {res.path / 'report.html'}" in res.stderr
    assert f"archsearch report {validated_run.path} -o" in validated_run.stderr
    assert cli("solve", "--space", "tinyvit").stderr.count("archsearch report") == 0  # no run directory, no hint


def test_report_bad_input(tmp_path: Path) -> None:
    res = cli("report", str(tmp_path / "nowhere"), "-o", str(tmp_path / "r.html"))
    assert res.code == 2 and "no candidates.json" in res.stderr and res.stderr.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium; installed here when missing and we are root (as .ci/run does), so the browser
    test runs in CI; skipped only where it is absent and cannot be installed."""
    if chromium_path() is None and can_install_chromium():
        cmd = "apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)"
        subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=900)
    path = chromium_path()
    if path is None:
        if can_install_chromium():
            pytest.fail("chromium is missing and `apt-get install chromium` failed")
        pytest.skip("chromium is not installed and this user cannot install it (not root): apt-get install chromium")
    return path


def test_report_renders_in_headless_chromium(chromium: str, full_report: tuple, tmp_path: Path) -> None:
    from PIL import Image

    out = full_report[1]
    with Page(out.resolve().as_uri(), width=1280, height=900) as page:
        # plots: every figure holds a drawn SVG with a real size
        plots = page.evaluate("""Array.from(document.querySelectorAll('figure.plot svg')).map(function (s) {
            var r = s.getBoundingClientRect(); return [r.width, r.height, s.querySelectorAll('path, use').length]; })""")
        assert len(plots) >= 1 + 4 + 1 + 2 + 1  # costs, 4 objectives, sweep, 2 validated fronts, curves
        assert all(w > 100 and h > 100 and n > 10 for w, h, n in plots)
        assert page.evaluate("document.querySelectorAll('svg.arch rect.box').length") > 12
        # the Pareto table: one row per candidate, sorted by clicking a header (a real mouse click)
        n_rows = page.evaluate("document.querySelectorAll('#pareto-table tbody tr').length")
        assert n_rows == sum(n_candidates(r) for r in full_report[0])
        col = page.evaluate("""Array.from(document.querySelectorAll('#pareto-table thead th'))
                               .findIndex(function (th) { return th.textContent.trim() === 'params'; }) + 1""")
        read = f"""Array.from(document.querySelectorAll('#pareto-table tbody tr td:nth-child({col})'))
                   .map(function (td) {{ return parseFloat(td.getAttribute('data-sort')); }})"""
        before = page.evaluate(read)
        page.click(f"#pareto-table thead th:nth-child({col})")
        ascending = page.evaluate(read)
        page.click(f"#pareto-table thead th:nth-child({col})")
        descending = page.evaluate(read)
        assert ascending == sorted(before) and descending == sorted(before, reverse=True) and before != ascending
        assert page.evaluate(f"document.querySelector('#pareto-table thead th:nth-child({col})').getAttribute('aria-sort')") \
            == "descending"
        # the hostile run name is shown as text and ran nothing
        assert page.evaluate("document.querySelectorAll('script').length") == 1
        assert HOSTILE in page.evaluate("document.querySelector('#runs-table').innerText")
        assert page.evaluate("document.querySelectorAll('#validation-table tbody tr').length") == 7
        # the validated fronts: a drawn figure and a sortable table per training, mean ± std where seeds > 1
        fronts = page.evaluate("""Array.from(document.querySelectorAll('figure.validated-front svg')).map(function (s) {
            var r = s.getBoundingClientRect(); return [r.width, r.height]; })""")
        assert len(fronts) == 2 and all(w > 300 and h > 150 for w, h in fronts)
        assert page.evaluate("document.querySelectorAll('table.validated-table tbody tr').length") == 3 + 2
        assert page.evaluate("document.querySelector('#validated-2-table tbody').innerText").count("±") == 2
        read = """Array.from(document.querySelectorAll('#validated-1-table tbody tr td:nth-child(5)'))
                  .map(function (td) { return parseFloat(td.getAttribute('data-sort')); })"""
        before = page.evaluate(read)
        page.click("#validated-1-table thead th:nth-child(5)")
        assert page.evaluate(read) == sorted(before) and before == sorted(before, reverse=True)
        # plots read at a glance (issue 19): as wide as the column, no two labels overlapping, labels inside their plot
        figures = plot_labels(page)
        assert len(figures) == 1 + 4 + 1 + 2 + 1
        for fig in figures:
            assert fig["svg"][2] - fig["svg"][0] == pytest.approx(fig["figure"][4], abs=2)  # the page's width, not half
            assert overlaps(fig["labels"], gap=1) == [], fig["labels"]
            sx0, sy0, sx1, sy1 = fig["svg"]
            assert all(sx0 <= x0 and x1 <= sx1 and sy0 <= y0 and y1 <= sy1 for x0, y0, x1, y1 in (b["box"] for b in fig["labels"]))
        costs = figures[0]["labels"]  # every published model of the runs' families, by name and top-1
        published = report_data(full_report[0]).references
        assert sorted(b["text"] for b in costs) == sorted(f"{r.name} {r.top1:g}%" for r in published.itertuples())
        assert sum(len(fig["labels"]) for fig in figures[1:5]) >= 3  # the published models' lines in the score fronts
        captions = page.evaluate("Array.from(document.querySelectorAll('figcaption')).map(function (c) { return c.innerText; })")
        assert not any(re.search(r"\de[+-]\d", c) for c in captions)  # hypervolumes as 3.63 M, not 3.6339e+06
        page.evaluate("window.scrollTo(0, document.querySelector('#fronts').offsetTop)")
        png = page.screenshot(tmp_path / "shot.png")
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float)
    assert image.shape[1] == 1280 and image.shape[0] > 600
    assert image.std() > 10  # not one flat colour
    nonwhite = (image.min(axis=2) < 235).mean()
    assert nonwhite > 0.03  # plots and text cover part of the page


def test_committed_example_report_in_headless_chromium(chromium: str, tmp_path: Path) -> None:
    """The committed example as a reader sees it: plots the column's width, no label over another, a screenshot
    of its front figure with something drawn on it."""
    from PIL import Image

    html = Path(__file__).resolve().parent.parent / "reports" / "deepmad-r50.html"
    with Page(html.as_uri(), width=1280, height=900) as page:
        figures = plot_labels(page)
        assert len(figures) == 2  # costs, the one objective's front
        for fig in figures:
            assert fig["svg"][2] - fig["svg"][0] == pytest.approx(fig["figure"][4], abs=2)
            assert overlaps(fig["labels"], gap=1) == []
        assert sorted(b["text"] for b in figures[0]["labels"]) == ["DeepMAD-R18 77.7%", "DeepMAD-R34 79.7%", "DeepMAD-R50 80.6%"]
        assert sorted(b["text"] for b in figures[1]["labels"]) == ["DeepMAD-R34 (backbone)"] * 2 + ["DeepMAD-R50 (backbone)"] * 2
        x0, y0, x1, y1 = figures[1]["svg"]
        scroll = page.evaluate("window.scrollY")
        data = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": x0, "y": y0 + scroll, "width": x1 - x0, "height": y1 - y0, "scale": 1})["data"]
    png = base64.b64decode(data)
    (tmp_path / "example-front.png").write_bytes(png)
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float)
    assert image.shape[1] == pytest.approx(x1 - x0, abs=2) and image.std() > 10


def test_latency_fronts_when_candidates_carry_predicted_latency(solved_runs: dict, tmp_path: Path) -> None:  # noqa: F811
    """A solve with a latency model writes ``latency_ms`` per candidate: the report gets a third front."""
    record = json.loads((solved_runs["tinyvit"].path / "candidates.json").read_text())
    latencies = [3.0, 1.0, 2.0, 1.0]
    for cand, lat in zip(record["candidates"], latencies):
        cand["latency_ms"] = lat
    (tmp_path / "lat").mkdir()
    (tmp_path / "lat" / "candidates.json").write_text(json.dumps(record))
    data = report_data([tmp_path / "lat"])
    front = data.fronts[("tinyvit-contract", "latency_ms")]
    scores = list(data.candidates["score"])  # sorted best first: candidate i has latency latencies[i]
    lat_of = dict(zip(scores, latencies))
    expected = sorted({(lat_of[s], s) for s in scores if not any(
        lat_of[t] <= lat_of[s] and t >= s and (lat_of[t], t) != (lat_of[s], s) for t in scores)})
    assert list(zip(front.xs, front.ys)) == expected
    assert data.candidates["latency_ms"].tolist() == latencies


def test_committed_example_report() -> None:
    root = Path(__file__).resolve().parent.parent
    html = (root / "reports" / "deepmad-r50.html").read_text()
    data = report_data([root / "reports" / "deepmad-r50"])
    assert data.runs["space"].tolist() == ["deepmad-r50"] and data.runs["command"][0].startswith("archsearch solve")
    assert data.runs["name"][0] in html and "DeepMAD-R50" in html and html.count("<script") == 1
    assert not re.search(r"""\b(src|href)\s*=\s*["'](?!#)""", html)
