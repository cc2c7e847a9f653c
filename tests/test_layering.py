"""The walls of ``shared/DESIGN.md``, read from the source: every module's imports, parsed with ``ast``.

Rooms are the subpackages (``space``, ``cost``, ``objectives``, ``solvers``, ``models``, ``train``,
``study``, ``results``, ``report``, ``cli``) and the ground floor (``errors``, ``_jsonio``,
``_files`` and the root package's ``__version__``: standard library only, importable by every room). An import is *module-level* when it
runs as the module is imported (``if``/``try`` blocks included, ``if TYPE_CHECKING:`` excluded) and
*lazy* when it sits inside a function.

The rules, at any level unless said otherwise:

* the ground floor imports no room;
* ``space`` imports no room and neither torch nor timm;
* ``cost`` imports only ``space``; ``objectives`` only ``space`` and ``cost``; ``solvers`` only
  ``space``, ``cost`` and ``objectives``; none of the three imports torch or timm, so
  ``archsearch solve`` and the solvers' brute-force tests run without a model in sight;
* ``models`` imports only ``space`` and ``cost`` (the cost model's widths) -- never ``solvers``,
  ``train``, ``report``;
* ``train`` imports only ``space``, ``cost`` and ``models`` -- never ``solvers`` (one known
  exception, below), ``study``, ``results``, ``report``;
* ``study`` never imports ``results``, ``report`` or ``cli``, and no torch or timm at module level
  (it reaches ``train``, ``models`` and ``solvers`` lazily, through narrow calls);
* ``results`` imports no torch, timm or matplotlib and none of ``models``, ``train``, ``solvers``,
  ``report``, ``cli``; it reads studies, so it may import ``study`` -- lazily only, never at module
  level (the run record and the row keys that both read live in ``space.records``);
* ``report`` imports only ``results`` and ``space`` (matplotlib and Jinja2 lazily), no torch or timm;
* nothing imports ``cli`` but ``archsearch.__main__``; the deprecated ``build`` alias imports only
  ``models``;
* the rooms' import graph has no cycle: neither counting module-level imports only, nor counting
  the lazy ones too -- every arrow points one way, down the pipeline.

Known exception (a debt, not a rule): ``train.latency``, the latency calibration, draws random designs
of a space with the solvers' programs (``DeepMADProgram``, the STViT designs), lazily.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "archsearch"
GROUND = {"errors", "_jsonio", "_files", "archsearch"}  # "archsearch": the root package (__version__)
HEAVY = {"torch", "timm", "matplotlib"}

#: (importing module prefix, imported room) -> why it is tolerated for now
KNOWN_EXCEPTIONS = {
    ("archsearch.train.latency", "solvers"): "random designs for the latency calibration (DESIGN: train never imports solvers)",
}


class Import(NamedTuple):
    module: str  # the importing module, e.g. archsearch.results.validation
    target: str  # the imported module, e.g. archsearch.study.store or torch
    line: int
    lazy: bool

    @property
    def room(self) -> str:
        return room_of(self.module)

    @property
    def target_room(self) -> str | None:
        """The archsearch room imported, or None for a third-party or standard-library module."""
        return room_of(self.target) if self.target.split(".")[0] == "archsearch" else None

    def __str__(self) -> str:
        return f"{self.module} imports {self.target} (line {self.line}, {'lazy' if self.lazy else 'module-level'})"


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "archsearch"


def _is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").is_file() or (PACKAGE / name / "__init__.py").is_file()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[Import]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, True)
                continue
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(ast.Module(body=child.orelse, type_ignores=[]), lazy)
                continue
            if isinstance(child, ast.Import):
                found.extend(Import(module, a.name, child.lineno, lazy) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    source = ".".join(base + ([child.module] if child.module else []))
                else:
                    source = child.module or ""
                if source == "archsearch":  # from archsearch import cost, space (rooms), __version__ (the root's)
                    found.extend(Import(module, f"archsearch.{a.name}" if _is_module(a.name) else "archsearch",
                                        child.lineno, lazy) for a in child.names)
                else:
                    found.append(Import(module, source, child.lineno, lazy))
            visit(child, lazy)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), False)
    return found


IMPORTS = [imp for path in sorted(PACKAGE.rglob("*.py")) for imp in _imports(path)]


def _known(imp: Import) -> bool:
    return any(imp.module.startswith(prefix) and imp.target_room == room for prefix, room in KNOWN_EXCEPTIONS)


def _offending(room: str, *, rooms: set[str] | None = None, never: set[str] = frozenset(),
               heavy: set[str] = frozenset(), module_level_never: set[str] = frozenset()) -> list[str]:
    """The imports of ``room``'s modules that break its rules (``rooms``: the only rooms it may import)."""
    bad = []
    for imp in IMPORTS:
        if imp.room != room or _known(imp):
            continue
        target = imp.target_room
        top = imp.target.split(".")[0]
        if target is None:
            if top in heavy or (not imp.lazy and top in module_level_never):
                bad.append(str(imp))
        elif target == room or target in GROUND:
            continue
        elif target in never or (rooms is not None and target not in rooms) or (not imp.lazy and target in module_level_never):
            bad.append(str(imp))
    return bad


def test_the_parser_sees_the_package() -> None:
    """A guard against a green run that read nothing: the walls below hold for real imports."""
    rooms = {imp.room for imp in IMPORTS}
    assert {"space", "cost", "objectives", "solvers", "models", "train", "study", "results", "report", "cli"} <= rooms
    assert any(imp.module == "archsearch.results.validation" and imp.target == "archsearch.study.store" and imp.lazy
               for imp in IMPORTS)
    assert any(imp.module == "archsearch.models.cnn" and imp.target == "torch" and not imp.lazy for imp in IMPORTS)


@pytest.mark.parametrize("room", sorted(GROUND))
def test_the_ground_floor_imports_no_room(room: str) -> None:
    assert _offending(room, rooms=set()) == []


RULES = {
    "space": dict(rooms=set(), heavy={"torch", "timm"}),
    "cost": dict(rooms={"space"}, heavy={"torch", "timm"}),
    "objectives": dict(rooms={"space", "cost"}, heavy={"torch", "timm"}),
    "solvers": dict(rooms={"space", "cost", "objectives"}, heavy={"torch", "timm"}),
    "models": dict(rooms={"space", "cost"}),
    "train": dict(rooms={"space", "cost", "models"}),
    "study": dict(never={"results", "report", "cli"}, module_level_never={"torch", "timm"}),
    "results": dict(never={"models", "train", "solvers", "report", "cli"}, heavy=HEAVY, module_level_never={"study"}),
    "report": dict(rooms={"results", "space"}, heavy={"torch", "timm"}),
    "build": dict(rooms={"models"}),
}


@pytest.mark.parametrize("room", sorted(RULES))
def test_each_room_keeps_its_walls(room: str) -> None:
    assert _offending(room, **RULES[room]) == []


def test_nothing_imports_the_cli() -> None:
    bad = [str(imp) for imp in IMPORTS
           if imp.target_room == "cli" and imp.room != "cli" and imp.module != "archsearch.__main__"]
    assert bad == []


def _cycle(lazy_too: bool) -> list[str] | None:
    graph: dict[str, set[str]] = defaultdict(set)
    for imp in IMPORTS:
        target = imp.target_room
        if target and target != imp.room and (lazy_too or not imp.lazy) and not _known(imp):
            graph[imp.room].add(target)
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, path + [node])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [])):
            return found
    return None


@pytest.mark.parametrize("lazy_too", [False, True], ids=["module-level", "with-lazy-imports"])
def test_the_rooms_form_no_import_cycle(lazy_too: bool) -> None:
    cycle = _cycle(lazy_too)
    assert cycle is None, " -> ".join(cycle) + ": " + "; ".join(
        str(imp) for imp in IMPORTS
        if (imp.room, imp.target_room) in set(zip(cycle, cycle[1:])) and (lazy_too or not imp.lazy))
