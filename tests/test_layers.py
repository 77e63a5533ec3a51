"""The package's layers, read from its imports: no import goes down-to-up, and there are no cycles.

    core < taxonomy < data < features < models < pipeline < {train, evaluate, retrieval} < {batch, serve, cli}

``core`` is the modules at the package root (posts, registry, atomic, digests, ...); the package
root modules analysis / generate / pipeline / views are the pipeline layer, ``cli`` and the
package's own ``__init__`` (the Python API) the top. Members of one ``{...}`` tier may import each
other, as long as the folders' graph stays acyclic. Every ``import`` and ``from ... import`` counts,
at module level and inside functions (lazy imports are still dependencies); only
``if TYPE_CHECKING:`` blocks are left out.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path

import somelvlm

PACKAGE = Path(somelvlm.__file__).parent

TIERS: dict[str, int] = {
    "core": 0, "taxonomy": 1, "data": 2, "features": 3, "models": 4, "pipeline": 5,
    "train": 6, "evaluate": 6, "retrieval": 6,
    "batch": 7, "serve": 7, "cli": 7, "api": 7,
}
PIPELINE_MODULES = {"analysis", "generate", "pipeline", "views"}

KNOWN: set[tuple[str, str]] = set()
"""(importer, imported) edges that go against the order today, each with the reason and who clears it."""


def layer_of(module: str) -> str:
    """The layer of a ``somelvlm...`` module name."""
    parts = module.split(".")
    if len(parts) == 1:
        return "api"
    top = parts[1]
    if top in PIPELINE_MODULES:
        return "pipeline"
    if top == "cli":
        return "cli"
    return top if top in TIERS else "core"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path) -> list[tuple[str, int]]:
    """``(imported somelvlm module, line)`` for every import in the file (``from pkg import mod``
    counts as ``pkg.mod`` when ``mod`` is a submodule)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                continue
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                for alias in child.names:
                    sub = f"{target}.{alias.name}"
                    is_module = (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").is_file() or \
                        (PACKAGE.parent / Path(*sub.split(".")) / "__init__.py").is_file()
                    found.append((sub if is_module else target, child.lineno))
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return [(name, line) for name, line in found if name == "somelvlm" or name.startswith("somelvlm.")]


@cache
def import_graph() -> dict[str, list[tuple[str, int]]]:
    """Every module of the package -> the package modules it imports (with line numbers)."""
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_walk_sees_the_whole_package():
    graph = import_graph()
    assert "somelvlm.cli" in graph and "somelvlm.train.loop" in graph and len(graph) > 80
    assert ("somelvlm.train.losses", 0) not in graph["somelvlm.models.multimodal"]
    # function-level imports count: the heads recipe imports the loop inside train()
    assert any(m == "somelvlm.train.loop" for m, _ in graph["somelvlm.train.heads"])


def test_no_import_goes_against_the_layers():
    bad = []
    for module, imports in import_graph().items():
        for target, line in imports:
            if (module, target) in KNOWN:
                continue
            if TIERS[layer_of(target)] > TIERS[layer_of(module)]:
                bad.append(f"{module} ({layer_of(module)}) line {line} imports {target} ({layer_of(target)})")
    assert not bad, "imports against the order " + " < ".join(
        sorted(set(TIERS), key=TIERS.get)) + ":\n  " + "\n  ".join(bad)


def test_known_exceptions_still_exist():
    """An exception that was fixed must leave KNOWN, so the list never hides a new edge."""
    edges = {(m, t) for m, imports in import_graph().items() for t, _ in imports}
    assert not KNOWN - edges, f"fixed, remove from KNOWN: {sorted(KNOWN - edges)}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return found


def test_no_module_imports_itself_back():
    modules = set(import_graph())
    graph = {m: {t for t, _ in imports if t != m and t in modules} for m, imports in import_graph().items()}
    assert not _cycles(graph), f"import cycles between modules: {_cycles(graph)}"


def test_no_cycle_between_folders():
    edges: dict[str, set[str]] = defaultdict(set)
    for module, imports in import_graph().items():
        for target, _ in imports:
            if (module, target) not in KNOWN and layer_of(module) != layer_of(target):
                edges[layer_of(module)].add(layer_of(target))
    assert not _cycles(edges), f"folders importing each other: {_cycles(edges)}"
