"""The layout shows the pipeline: no module of `rag/` (or of `bench/`) imports, however indirectly
and however lazily (inside a function), a module that imports it back; nothing finds its imports
by editing `sys.path`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The known modules `path` imports anywhere in it: `from rag.x import y` names rag.x, and
    rag.x.y too when y is a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        found |= {name for name in names if name in known}
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        order[node] = low[node] = len(order)
        stack.append(node)
        for other in graph[node]:
            if other not in order:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], order[other])
        if low[node] == order[node]:
            group = [stack.pop()]
            while group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for node in graph:
        if node not in order:
            visit(node)
    return found


@pytest.mark.parametrize("package", ["rag", "bench"])
def test_no_import_cycle(package: str) -> None:
    paths = {module_name(p): p for p in (ROOT / package).rglob("*.py")}
    graph = {name: imports_of(path, set(paths)) - {name} for name, path in paths.items()}
    assert cycles(graph) == []


def test_no_sys_path_edits() -> None:
    """Scripts, benchmarks and tests import the installed `rag` and the repository's packages."""
    edits = [
        str(path.relative_to(ROOT))
        for folder in ("rag", "bench", "scripts", "tests")
        for path in (ROOT / folder).rglob("*.py")
        if "sys.path." in path.read_text(encoding="utf-8") and path != Path(__file__)
    ]
    assert edits == []


def test_the_cycle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_modules_and_functions_read_in_one_sitting() -> None:
    """No module of `rag/` over 350 lines, no function over 60."""
    long = []
    for path in (ROOT / "rag").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        name = str(path.relative_to(ROOT))
        if text.count("\n") > 350:
            long.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 60:
                    long.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    assert long == []
