"""The house has floors: every module under gateway/ belongs to a layer, imports only from its own
layer or lower ones, and no set of modules imports itself round in a circle.

Imports are read from the source (ast), including imports inside functions and under
TYPE_CHECKING: a deferred import still ties the modules together.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gateway"

# Lowest first. A module belongs to the layer of the longest name it starts with.
LAYERS: Sequence[tuple[str, Sequence[str]]] = (
    ("strict_numbers", ("gateway.strict_numbers",)),
    ("messages", ("gateway.messages",)),
    ("core, config", ("gateway.core", "gateway.config")),
    ("store", ("gateway.store",)),
    ("service", ("gateway.service",)),
    ("transport", ("gateway.transport",)),
    ("runtime", ("gateway.runtime",)),
    ("api", ("gateway.api",)),
    # The pages sit above the API: they reuse its field parsing and read queries, never its routes.
    ("web", ("gateway.web",)),
    ("app and tools", ("gateway.app", "gateway.demo", "gateway.docs", "gateway.mock", "gateway.conformance",
                       "gateway.workers")),
    ("cli", ("gateway.cli",)),
)

Graph = Mapping[str, set[str]]


# --- reading the imports ------------------------------------------------------------------------


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module under `root` (a package named after its directory)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _imported(node: ast.AST, module: str, is_package: bool) -> Iterable[str]:
    """The dotted names one import statement refers to: modules, or names in modules (which
    `import_graph` cuts back to their module)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            source = ".".join([*base, node.module] if node.module else base)
        else:
            source = node.module or ""
        yield from (f"{source}.{alias.name}" for alias in node.names)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports. `from x import name` counts as an
    import of x.name when that is a module, else of x; the top package itself is left out."""
    names = module_names(root)
    top = root.name
    graph: dict[str, set[str]] = {}
    for module, path in names.items():
        is_package = path.name == "__init__.py"
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for name in _imported(node, module, is_package):
                while name not in names and "." in name:
                    name = name.rsplit(".", 1)[0]
                if name in names and name not in (module, top):
                    targets.add(name)
        graph[module] = targets
    graph.pop(top, None)
    return graph


# --- the checks -----------------------------------------------------------------------------------


def layer_of(module: str, layers: Sequence[tuple[str, Sequence[str]]] = LAYERS) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer index)
    for index, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def unplaced(graph: Graph, layers: Sequence[tuple[str, Sequence[str]]] = LAYERS) -> list[str]:
    return sorted(m for m in graph if layer_of(m, layers) is None)


def upward_imports(graph: Graph, layers: Sequence[tuple[str, Sequence[str]]] = LAYERS) -> list[str]:
    """One line per import from a lower layer to a higher one."""
    found = []
    for module, targets in sorted(graph.items()):
        low = layer_of(module, layers)
        for target in sorted(targets):
            high = layer_of(target, layers)
            if low is not None and high is not None and high > low:
                found.append(f"{module} ({layers[low][0]}) imports {target} ({layers[high][0]})")
    return found


def import_circles(graph: Graph) -> list[list[str]]:
    """The sets of modules that import each other round (strongly connected, more than one),
    each sorted. Tarjan's algorithm, iterative so deep graphs do not hit the recursion limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1:
                    circles.append(sorted(members))
    return sorted(circles)


# --- the project ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_import_graph_is_read_from_the_source(graph):
    assert "gateway.runtime" in graph["gateway.api._web"]  # from ..runtime import ...
    assert "gateway.api.queries" in graph["gateway.api.events"]  # from . import queries as q
    assert "gateway.store.models" in graph["gateway.api.intake"]  # an import inside a function
    assert "gateway.store.migrations.env" in graph


def test_every_module_has_a_layer(graph):
    assert unplaced(graph) == [], "place these modules in LAYERS (tests/test_layers.py)"


def test_no_module_imports_from_a_higher_layer(graph):
    assert upward_imports(graph) == []


def test_no_import_circle(graph):
    assert import_circles(graph) == []


# --- the checks themselves, on a small made-up graph ------------------------------------------------

TOY_LAYERS = (("low", ("pkg.low",)), ("high", ("pkg.high", "pkg.top")))


def test_a_circle_is_found_and_named():
    toy = {"pkg.low.a": {"pkg.low.b"}, "pkg.low.b": {"pkg.low.c"}, "pkg.low.c": {"pkg.low.a"},
           "pkg.high.x": {"pkg.low.a"}, "pkg.high.y": set()}
    assert import_circles(toy) == [["pkg.low.a", "pkg.low.b", "pkg.low.c"]]
    assert import_circles({**toy, "pkg.low.c": set()}) == []


def test_an_upward_import_is_found_and_named():
    toy = {"pkg.low.a": {"pkg.high.x"}, "pkg.high.x": {"pkg.low.a"}, "pkg.top": set()}
    assert upward_imports(toy, TOY_LAYERS) == ["pkg.low.a (low) imports pkg.high.x (high)"]
    assert import_circles(toy) == [["pkg.high.x", "pkg.low.a"]]
    assert upward_imports({**toy, "pkg.low.a": set()}, TOY_LAYERS) == []


def test_a_module_outside_every_layer_is_named():
    assert unplaced({"pkg.low.a": set(), "pkg.web.page": set()}, TOY_LAYERS) == ["pkg.web.page"]


def test_imports_are_read_with_relative_forms_and_inside_functions(tmp_path):
    root = tmp_path / "pkg"
    (root / "low").mkdir(parents=True)
    (root / "high").mkdir()
    for init in (root / "__init__.py", root / "low" / "__init__.py", root / "high" / "__init__.py"):
        init.write_text("")
    (root / "low" / "a.py").write_text("def later():\n    from ..high import b\n")
    (root / "low" / "c.py").write_text("from . import a\nimport pkg.low\n")
    (root / "high" / "b.py").write_text("from pkg.low.a import later\nfrom .. import low\n")
    toy = import_graph(root)
    assert toy["pkg.low.a"] == {"pkg.high.b"}
    assert toy["pkg.low.c"] == {"pkg.low.a", "pkg.low"}
    assert toy["pkg.high.b"] == {"pkg.low.a", "pkg.low"}
    assert import_circles(toy) == [["pkg.high.b", "pkg.low.a"]]
    assert upward_imports(toy, TOY_LAYERS) == ["pkg.low.a (low) imports pkg.high.b (high)"]
