"""The README and the pages under docs/: every relative link and anchor resolves, the README stays short.

A link is ``[text](path)``, ``[text](path#anchor)`` or ``[text](#anchor)`` (images too). Links with a
scheme (``http:``, ``https:``, ``mailto:``...) are not followed, and nothing inside fenced code blocks
or inline code spans is a link. The path must exist in the repository (and, in a git checkout, not be
git-ignored, so it is there on GitHub too); an anchor into a Markdown file must be the GitHub slug of
one of its headings: the heading's text lowercased, punctuation other than hyphens, underscores and
spaces removed, each space a hyphen, and the second, third... heading of the same slug suffixed
``-1``, ``-2``...
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*<?([^()\s<>]*)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_SCHEME = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:|//)")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks (the fences themselves excluded)."""
    out: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        m = _FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)
                continue
            out.append((number, line))
        elif m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip()[len(m.group(1)):].strip():
            fence = None
    return out


def heading_texts(text: str) -> list[str]:
    """The text of every ATX (``## x``) and setext (``x`` over ``===``) heading outside code blocks."""
    heads: list[str] = []
    previous: str | None = None
    for _, line in prose_lines(text):
        m = _ATX.match(line)
        if m:
            heads.append(m.group(1) or "")
            previous = None
            continue
        # A paragraph line over ``===`` or ``---``; under a list item, table row or quote it is not one.
        if _SETEXT.match(line) and previous and previous.strip() and not previous.lstrip().startswith(("-", "*", "+", "|", ">")):
            heads.append(previous.strip())
            previous = None
            continue
        previous = line
    return heads


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading (without the ``-N`` suffix of a repeated heading)."""
    text = _CODE_SPAN.sub(lambda m: m.group(2).strip(), heading)  # inline code: its content
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.replace("*", "").replace("~~", "")  # emphasis and strike-through markers
    text = text.strip().lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in "-_ ")
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a Markdown text, repeated headings numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for heading in heading_texts(text):
        slug = github_slug(heading)
        if slug in seen:
            seen[slug] += 1
            out.add(f"{slug}-{seen[slug]}")
        else:
            seen[slug] = 0
            out.add(slug)
    return out


def relative_links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every relative link outside code blocks and inline code."""
    links: list[tuple[int, str]] = []
    for number, line in prose_lines(text):
        # A code span holding a whole link is code; one inside a link's text ([`x`](y)) is just text.
        line = _CODE_SPAN.sub(lambda m: "code" if "](" in m.group(2) else m.group(0), line)
        for m in _LINK.finditer(line):
            target = m.group(2)
            if target and not _SCHEME.match(target):
                links.append((number, target))
    return links


def _git_ignored(root: Path, paths: list[Path]) -> set[Path]:
    """The paths that git ignores in the checkout at ``root`` (none when git or the checkout is absent)."""
    if not paths or shutil.which("git") is None or not (root / ".git").exists():
        return set()
    proc = subprocess.run(
        ["git", "-C", str(root), "check-ignore", "--stdin"],
        input="\n".join(str(p.relative_to(root)) for p in paths),
        capture_output=True, text=True, check=False,
    )
    return {(root / line).resolve() for line in proc.stdout.splitlines() if line}


def broken_links(md_file: Path, root: Path) -> list[str]:
    """One message per link of ``md_file`` that does not resolve inside ``root``."""
    root = root.resolve()
    text = md_file.read_text(encoding="utf-8")
    problems: list[str] = []
    checked: list[tuple[str, Path]] = []
    for number, target in relative_links(text):
        where = f"{md_file.relative_to(root)}:{number}: ({target})"
        path_part, _, anchor = target.partition("#")
        path_part = unquote(path_part)
        if not path_part:
            dest = md_file.resolve()
        elif path_part.startswith("/"):
            dest = (root / path_part.lstrip("/")).resolve()
        else:
            dest = (md_file.parent / path_part).resolve()
        if dest != root and root not in dest.parents:
            problems.append(f"{where} points outside the repository")
            continue
        if not dest.exists():
            problems.append(f"{where} {dest.relative_to(root)} does not exist")
            continue
        checked.append((where, dest))
        if anchor and dest.is_file() and dest.suffix.lower() == ".md":
            if unquote(anchor) not in anchors(dest.read_text(encoding="utf-8")):
                problems.append(f"{where} no heading of {dest.relative_to(root)} has the anchor #{anchor}")
    ignored = _git_ignored(root, [dest for _, dest in checked])
    problems += [f"{where} {dest.relative_to(root)} is git-ignored" for where, dest in checked if dest in ignored]
    return problems


def markdown_files(root: Path) -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


# --- the repository -------------------------------------------------------------------------------


@pytest.mark.parametrize("md_file", markdown_files(ROOT), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(md_file: Path) -> None:
    assert md_file.is_file()
    assert broken_links(md_file, ROOT) == []


def test_docs_pages_exist_and_link_back_to_the_readme() -> None:
    pages = markdown_files(ROOT)[1:]
    assert len(pages) >= 5
    for page in pages:
        lines = page.read_text(encoding="utf-8").splitlines()
        assert lines[0].startswith("# "), f"{page}: starts with its title"
        assert any(target.split("#")[0].endswith("README.md") for _, target in relative_links("\n".join(lines[:8]))), (
            f"{page}: links back to the README near the top"
        )


def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def test_readme_keeps_the_set_up_commands_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in ("bash scripts/install.sh", "python -m pytest"):
        assert command in ci
        assert command in readme


# --- the checker itself ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Set-up", "set-up"),
        ("Search quality: do the designed networks train better?", "search-quality-do-the-designed-networks-train-better"),
        ("`archsearch solve`", "archsearch-solve"),
        ("Scaling out: one PostgreSQL study, workers on many machines", "scaling-out-one-postgresql-study-workers-on-many-machines"),
        ("The ReViT rule (ViTs: `revit`, `revit-ref`, `revit-t`)", "the-revit-rule-vits-revit-revit-ref-revit-t"),
        ("C++ & Rust", "c--rust"),
        ("snake_case **bold** [a link](x.md)", "snake_case-bold-a-link"),
        ("Über die Größe ρ", "über-die-größe-ρ"),
        ("  Trailing spaces  ", "trailing-spaces"),
    ],
)
def test_github_slug(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_anchors_number_repeated_headings_and_skip_code_blocks() -> None:
    text = "# A\n\n## A\n\n```bash\n# not a heading\n## A\n```\n\n### A!\n\nB c\n---\n\nD\n===\n"
    assert heading_texts(text) == ["A", "A", "A!", "B c", "D"]
    assert anchors(text) == {"a", "a-1", "a-2", "b-c", "d"}


def test_broken_links_are_reported(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## A section\n\n## A section\n", encoding="utf-8")
    (tmp_path / "data.json").write_text("{}", encoding="utf-8")
    (tmp_path / "README.md").write_text(
        "# Title\n\n## Set-up\n\n"
        "[ok](docs/page.md) [ok](docs/page.md#a-section) [ok](docs/page.md#a-section-1) [ok](#set-up)\n"
        "[ok](data.json) [ok](<docs/page.md> \"title\") ![ok](data.json) [ok](docs/) [ok](./docs/page.md#a-section)\n"
        "[web](https://example.com/missing.md) [mail](mailto:x@example.com) `[code](missing-in-code.md)`\n"
        "[missing file](docs/missing.md)\n"
        "[missing anchor](docs/page.md#a-section-2)\n"
        "[missing local anchor](#setup)\n"
        "[outside](../outside.md)\n"
        "```\n[in a fence](missing-in-fence.md)\n```\n",
        encoding="utf-8",
    )
    problems = broken_links(tmp_path / "README.md", tmp_path)
    assert len(problems) == 4, problems
    assert "README.md:8: (docs/missing.md) docs/missing.md does not exist" in problems
    assert "README.md:9: (docs/page.md#a-section-2) no heading of docs/page.md has the anchor #a-section-2" in problems
    assert "README.md:10: (#setup) no heading of README.md has the anchor #setup" in problems
    assert "README.md:11: (../outside.md) points outside the repository" in problems


def test_git_ignored_targets_are_reported(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("runs/\n", encoding="utf-8")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "out.json").write_text("{}", encoding="utf-8")
    (tmp_path / "README.md").write_text("# T\n\n[a local run](runs/out.json)\n", encoding="utf-8")
    assert broken_links(tmp_path / "README.md", tmp_path) == ["README.md:3: (runs/out.json) runs/out.json is git-ignored"]
