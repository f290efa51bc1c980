"""The package's import structure: no module imports another's ``_private`` names, and the
modules import each other without a cycle, so every layer can be read, tested and changed from
the bottom up.

Every import statement counts: at module level, under ``TYPE_CHECKING`` and inside functions
(a lazy import hides a cycle from Python, not from a reader). ``from package import name`` is an
edge to the submodule when ``name`` is one, else to the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import edgebench

Graph = dict[str, set[str]]


def _modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under the package folder *root*."""
    out = {}
    for path in root.rglob("*.py"):
        parts = (package, *path.relative_to(root).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _target(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` statement in *module* reads from."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(root: Path, package: str) -> tuple[Graph, list[str]]:
    """The package's module import graph, and every ``_private`` name one module imports from
    another (as ``"importer: from target import name"``; dunder names such as ``__version__``
    are public)."""
    modules = _modules(root, package)
    graph: Graph = {m: set() for m in modules}
    private: list[str] = []
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                target = _target(module, path, node)
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in modules:
                        graph[module].add(sub)
                    elif target in modules:
                        graph[module].add(target)
                        is_private = alias.name.startswith("_") and not alias.name.endswith("__")
                        if is_private and target != module:
                            private.append(f"{module}: from {target} import {alias.name}")
            elif isinstance(node, ast.Import):
                graph[module] |= {a.name for a in node.names if a.name in modules}
        graph[module].discard(module)
    return graph, private


def find_cycle(graph: Graph) -> list[str]:
    """One import cycle as ``[a, b, ..., a]``, or ``[]`` when the graph has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return []

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return []


def test_no_module_imports_a_private_name_from_another():
    _, private = import_graph(Path(edgebench.__file__).parent, "edgebench")
    assert private == [], "private names imported across modules:\n" + "\n".join(private)


def test_edgebench_modules_import_each_other_without_a_cycle():
    graph, _ = import_graph(Path(edgebench.__file__).parent, "edgebench")
    assert len(graph) > 100  # the whole package was scanned
    cycle = find_cycle(graph)
    assert cycle == [], "import cycle: " + " -> ".join(cycle)


def test_the_scan_finds_lazy_relative_and_type_checking_cycles_and_private_names(tmp_path: Path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "__version__ = '1'\n",
        "a.py": "from pkg.sub import b\nfrom pkg import __version__\n",
        "sub/__init__.py": "",
        "sub/b.py": "def f():\n    from ..c import _helper\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n_helper = 1\n",
        "d.py": "from pkg.c import _helper as _h\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    graph, private = import_graph(pkg, "pkg")
    assert sorted(private) == ["pkg.d: from pkg.c import _helper", "pkg.sub.b: from pkg.c import _helper"]
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
    (pkg / "c.py").write_text("_helper = 1\n")
    assert find_cycle(import_graph(pkg, "pkg")[0]) == []


def _private_defs(tree: ast.AST) -> set[str]:
    """Private names a module defines: functions, methods, classes, assigned names, and
    attributes it assigns on ``self``."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            out.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.add(node.target.id)
    return {n for n in out if n.startswith("_") and not n.endswith("__")}


def private_uses(root: Path, package: str) -> list[str]:
    """``obj._name`` where ``obj`` is not ``self``/``cls`` and ``_name`` is private to another
    module of the package (defined there, not here): one module driving another's internals,
    which an import scan cannot see (``pipe._build_one(...)``)."""
    modules = _modules(root, package)
    trees = {m: ast.parse(p.read_text(), str(p)) for m, p in modules.items()}
    defs = {m: _private_defs(t) for m, t in trees.items()}
    out = []
    for module, tree in trees.items():
        others = set().union(*(d for m, d in defs.items() if m != module))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.endswith("__")):
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
                continue
            if node.attr in others and node.attr not in defs[module]:
                out.append(f"{module}:{node.lineno}: {ast.unparse(node)}")
    return out


def test_no_module_uses_another_modules_private_attributes():
    uses = private_uses(Path(edgebench.__file__).parent, "edgebench")
    assert uses == [], "private attributes used across modules:\n" + "\n".join(uses)


def test_the_private_attribute_scan_finds_a_driver_calling_private_methods(tmp_path: Path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "pipeline.py").write_text(
        "class Pipeline:\n    def _build_one(self):\n        self._cache = 1\n    def run(self):\n        return self._build_one()\n"
    )
    (pkg / "engine.py").write_text("def go(pipe):\n    pipe._build_one()\n    return pipe._cache, pipe.run()\n")
    assert private_uses(pkg, "pkg") == ["pkg.engine:2: pipe._build_one", "pkg.engine:3: pipe._cache"]
    (pkg / "engine.py").write_text("def go(pipe):\n    return pipe.run()\n")
    assert private_uses(pkg, "pkg") == []


# what each layer must never import: the commands and drivers built on it
UPWARD = {
    "edgebench.subject": (
        "edgebench.study",
        "edgebench.search",
        "edgebench.scale",
        "edgebench.cli",
        "edgebench.report",
    ),
    "edgebench.compress": (
        "edgebench.study",
        "edgebench.search",
        "edgebench.scale",
        "edgebench.cli",
        "edgebench.report",
    ),
    "edgebench.export": ("edgebench.study", "edgebench.search", "edgebench.scale", "edgebench.cli", "edgebench.report"),
    "edgebench.report": ("edgebench.search", "edgebench.scale", "edgebench.cli"),
    "edgebench.study": ("edgebench.search", "edgebench.scale", "edgebench.cli"),
}


def test_no_layer_imports_the_layers_built_on_it():
    graph, _ = import_graph(Path(edgebench.__file__).parent, "edgebench")
    bad = [
        f"{m} -> {t}"
        for m, targets in graph.items()
        for t in targets
        for low, highs in UPWARD.items()
        if (m == low or m.startswith(low + ".")) and any(t == h or t.startswith(h + ".") for h in highs)
    ]
    assert bad == [], "upward imports:\n" + "\n".join(sorted(bad))
