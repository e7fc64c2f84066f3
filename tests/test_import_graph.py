"""The package's import graph: no cycles, and nothing but optional heavy packages imported inside functions.

Every module of ``compress/`` is parsed with ``ast`` (nothing is imported or run). An edge A → B means that A
imports module B of the package, at module level or inside a function; relative imports are resolved, and
``from compress.x import name`` points at ``compress.x.name`` when that is a module, else at ``compress.x``.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "compress"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
# The only packages a function may import (optional extras, or slow to import and used by plots alone).
OPTIONAL_LAZY = ("matplotlib", "openvino", "nncf", "tensorrt")


@dataclass(frozen=True)
class Import:
    """One imported name as written: the absolute dotted name, where, and whether inside a function."""

    module: str
    target: str
    line: int
    in_function: bool
    text: str


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` file under ``root`` (``__init__`` names its package)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from … import`` reads from (relative levels resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


class _Collector(ast.NodeVisitor):
    """Every import statement of one module, with whether it sits inside a function."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package, self.depth = module, is_package, 0
        self.found: list[Import] = []

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _add(self, node: ast.stmt, targets: list[str]) -> None:
        text = ast.unparse(node)
        self.found += [Import(self.module, t, node.lineno, self.depth > 0, text) for t in targets]

    def visit_Import(self, node: ast.Import) -> None:
        self._add(node, [alias.name for alias in node.names])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _absolute(node, self.module, self.is_package)
        self._add(node, [base if alias.name == "*" else f"{base}.{alias.name}" for alias in node.names])


def collect_imports(modules: dict[str, Path]) -> list[Import]:
    """Every import of every module (``from x import a`` gives the target ``x.a``; resolved later)."""
    found = []
    for name, path in modules.items():
        collector = _Collector(name, path.name == "__init__.py")
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        found += collector.found
    return found


def resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The module of the package that ``target`` names: itself, or its longest prefix that is a module."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def import_graph(modules: dict[str, Path], imports: list[Import]) -> dict[str, set[str]]:
    """Module → the package modules it imports (module level and function level alike)."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for item in imports:
        target = resolve(item.target, modules)
        if target is not None and target != item.module:
            graph[item.module].add(target)
    return graph


def knots(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components that hold a cycle (modules that import each other, maybe indirectly)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan; the graph has ~100 nodes, recursion depth is no concern
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def cycle_through(start: str, component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """Shortest import path start → … → start inside ``component`` (breadth first)."""
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if nxt not in parents:
                    parents[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # unreachable for a strongly connected component


def _real_package() -> tuple[dict[str, Path], list[Import]]:
    modules = module_files(ROOT, PACKAGE)
    return modules, collect_imports(modules)


def test_the_package_has_no_import_cycles() -> None:
    modules, imports = _real_package()
    graph = import_graph(modules, imports)
    found = [(" → ".join(cycle_through(min(knot), knot, graph)), sorted(knot)) for knot in knots(graph)]
    assert not found, "import cycles (function-level imports included):\n" + "\n".join(
        f"{cycle}  [modules in this knot: {', '.join(members)}]" for cycle, members in found)


def test_functions_import_only_the_optional_heavy_packages() -> None:
    modules, imports = _real_package()
    root = ROOT.parent
    lazy = sorted({(str(modules[i.module].relative_to(root)), i.line, i.text) for i in imports
                   if i.in_function and i.target.split(".")[0] not in OPTIONAL_LAZY})
    assert not lazy, (f"imports inside functions (only {', '.join(OPTIONAL_LAZY)} may be imported there; "
                      "import the rest at module level):\n" + "\n".join(f"{f}:{n}: {t}" for f, n, t in lazy))


def test_the_graph_builder_on_a_small_package(tmp_path: Path) -> None:
    files = {
        "__init__.py": "",
        "a.py": "from . import b\nfrom .sub import thing\n",
        "b.py": "import os\n\ndef f():\n    from pkg.sub.leaf import name\n    import matplotlib.pyplot\n",
        "sub/__init__.py": "from .leaf import name as thing\n",
        "sub/leaf.py": "from .. import a\nfrom pkg.b import f\n\nclass C:\n    import json\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    modules = module_files(tmp_path, "pkg")
    assert set(modules) == {"pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.leaf"}
    imports = collect_imports(modules)
    graph = import_graph(modules, imports)
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b", "pkg.sub"}, "pkg.b": {"pkg.sub.leaf"},
                     "pkg.sub": {"pkg.sub.leaf"}, "pkg.sub.leaf": {"pkg.a", "pkg.b"}}
    inside = sorted((i.module, i.target) for i in imports if i.in_function)
    assert inside == [("pkg.b", "matplotlib.pyplot"), ("pkg.b", "pkg.sub.leaf.name")]
    assert knots(graph) == [{"pkg.a", "pkg.b", "pkg.sub", "pkg.sub.leaf"}]
    cycle = cycle_through("pkg.a", knots(graph)[0], graph)
    assert cycle in (["pkg.a", "pkg.b", "pkg.sub.leaf", "pkg.a"], ["pkg.a", "pkg.sub", "pkg.sub.leaf", "pkg.a"])
    assert all(b in graph[a] for a, b in zip(cycle, cycle[1:]))  # every step is an import
    assert knots({"x": {"x"}, "y": {"x"}}) == [{"x"}] and cycle_through("x", {"x"}, {"x": {"x"}}) == ["x", "x"]
    assert knots({"x": {"y"}, "y": set()}) == []
