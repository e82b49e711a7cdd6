"""The shape of ``src/hora`` (docs/architecture.md): no import cycle between files (imports inside functions and
under ``TYPE_CHECKING`` count), no function over 80 lines, no file over 400, at most 12 modules at the top of the
harness (``hora.experiments``), and the tuner, the harness and each of its rooms with a docstring naming their
modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hora"
MAX_FUNCTION_LINES = 80
MAX_FILE_LINES = 400
MAX_HARNESS_TOP_MODULES = 12


def import_cycles(graph) -> list[list[str]]:
    """The strongly connected components of more than one module of a grimp import graph (Tarjan's algorithm,
    iterative): each is a set of files that import each other, directly or through others."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_import_cycles_are_found():
    grimp = pytest.importorskip("grimp")
    graph = grimp.ImportGraph()
    for name in ("a", "a.b", "a.c", "a.d"):
        graph.add_module(name)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.d")
    graph.add_import(importer="a.d", imported="a.b")
    graph.add_import(importer="a", imported="a.b")
    assert import_cycles(graph) == [["a.b", "a.c", "a.d"]]


def test_no_file_imports_itself_through_others():
    grimp = pytest.importorskip("grimp")  # import-linter's graph builder, in the test extra
    graph = grimp.build_graph("hora", cache_dir=None)
    assert import_cycles(graph) == []


def python_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_file_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in python_files()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES}
    assert long == {}


def test_no_function_over_80_lines():
    long = {}
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(PACKAGE)}:{node.name}"] = lines
    assert long == {}


def test_the_harness_is_in_rooms_and_every_package_names_its_modules():
    harness = PACKAGE / "experiments"
    top = sorted(p.name for p in harness.glob("*.py") if p.name != "__init__.py")
    assert len(top) <= MAX_HARNESS_TOP_MODULES, top
    for package in [PACKAGE / "tuner", *sorted(p.parent for p in harness.rglob("__init__.py"))]:
        docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8"))) or ""
        modules = [p.stem for p in package.glob("*.py") if p.name != "__init__.py"]
        rooms = [p.name for p in package.iterdir() if (p / "__init__.py").is_file()]
        unnamed = [m for m in modules + rooms if m not in docstring]
        assert unnamed == [], f"{package.relative_to(PACKAGE.parent)}/__init__.py does not name {unnamed}"
