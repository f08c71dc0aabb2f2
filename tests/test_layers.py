"""Every import points one way: no circle between files, none against the layer table of docs/architecture.md.

Every import statement of the product is read with `ast`, those inside functions and under
`if TYPE_CHECKING:` included (a deferred import that exists to hide a circle is a circle). An import
`from a.b import c` is an edge to the module `a.b.c` when there is one, else to `a.b`; the package
`__init__` Python runs on the way is not an edge.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("cachegate", "proxy", "strategies", "backends", "stack", "loadtest", "invalidator", "mutation")
Graph = dict[str, dict[str, int]]  # module -> imported module -> line of the first such import


def modules(root: Path) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def import_graph(root: Path) -> Graph:
    known = modules(root)
    graph: Graph = {}
    for name, path in known.items():
        edges: dict[str, int] = {}
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolved against this module's package
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                           for alias in node.names]
            for target in targets:
                while target and target not in known:  # `import a.b.c` of a name inside a.b
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def circles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
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
            visit(v)
    return found


def layer_table(
        doc: Path = REPO / "docs" / "architecture.md") -> tuple[dict[str, str], dict[str, set[str] | None]]:
    """(module or package -> layer, layer -> the layers it may import; None: anything), from the doc."""
    text = doc.read_text()
    table = text.split("<!-- layers -->", 1)[1].split("<!-- /layers -->", 1)[0]
    members: dict[str, str] = {}
    allowed: dict[str, set[str] | None] = {}
    for row in table.strip().splitlines()[2:]:
        layer, names, may = (cell.strip() for cell in row.strip().strip("|").split("|"))
        for member in re.findall(r"`([^`]+)`", names):
            members[member] = layer
        allowed[layer] = None if may == "anything" else {m.strip() for m in may.split(",") if m.strip()
                                                          and not m.strip().startswith("(")}
    return members, allowed


def layer_of(module: str, members: dict[str, str]) -> str | None:
    """The row that names the module itself, else the row of its nearest named package."""
    name = module
    while name:
        if name in members:
            return members[name]
        name = name.rpartition(".")[0]
    return None


def violations(graph: Graph, root: Path) -> list[str]:
    members, allowed = layer_table()
    out = []
    for module, edges in sorted(graph.items()):
        mine = layer_of(module, members)
        if mine is None:
            out.append(f"{module}: in no layer of docs/architecture.md")
            continue
        may = allowed[mine]
        for target, line in sorted(edges.items()):
            theirs = layer_of(target, members)
            if may is not None and theirs != mine and theirs not in may:
                path = modules(root)[module].relative_to(root)
                out.append(f"{path}:{line}: {module} ({mine}) imports {target} ({theirs})")
    return out


def test_no_import_circle_between_files() -> None:
    found = circles(import_graph(REPO))
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_every_import_keeps_the_layer_rule_of_docs_architecture() -> None:
    found = violations(import_graph(REPO), REPO)
    assert not found, "imports against docs/architecture.md, Layers:\n" + "\n".join(found)


def test_the_walk_sees_deferred_imports() -> None:
    """The checker itself: a lazy import and a TYPE_CHECKING one count, so neither can hide a circle."""
    graph = import_graph(REPO)
    assert "cachegate.config" in graph["cachegate.cli"]  # a top-level import
    assert "proxy.server" in graph["cachegate.cli"]      # imported inside cmd_proxy()
    assert circles({"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}) == [["a", "b", "c"]]
