"""The package's imports run one way (docs/architecture.md): no module imports, directly or
through others, a module that imports it back.

Read from the source with ``ast`` (nothing is imported): every ``import`` counts, at module level
or inside a function, relative ones resolved.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "fusedsched"
ROOT = Path(__file__).resolve().parents[1] / "src" / PACKAGE


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _bound_names(path: Path) -> set[str]:
    """The names a module binds at its top level (definitions, assignments, imports)."""
    names = set()
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).partition(".")[0] for alias in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that module ``name`` imports, anywhere in it.

    ``from P import x`` imports the module ``P.x`` when there is one; else the name ``x`` that
    ``P`` binds (an edge to ``P``); a name ``P`` does not bind is a submodule that is not Python
    source (the compiled extension ``_C``), outside the graph.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                source = ".".join(base[: len(base) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = []
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:
                    targets.append(f"{source}.{alias.name}")
                elif source in modules and (alias.name == "*" or alias.name in _bound_names(modules[source])):
                    targets.append(source)
                elif source not in modules:
                    targets.append(source)  # outside the package, or a module below one
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` reaches a.b.c, else its package
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], path[len(path):] = 1, [node]
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_is_read_from_the_sources():
    graph = _graph()
    assert {"fusedsched.schedule.fields", "fusedsched.schedule.program", "fusedsched.tml.config", "fusedsched.schedule.kinds"} <= set(graph)
    assert "fusedsched.schedule.program" in graph["fusedsched.ops._reference"]  # `from ..program import ...`
    assert "fusedsched.schedule.kinds.compose" in graph["fusedsched.schedule.kinds"]  # `from .compose import ...`


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_imports_have_no_cycle():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_fields_import_nothing_from_the_package():
    assert _graph()[f"{PACKAGE}.schedule.fields"] == set()


def test_program_imports_no_kind_and_no_config():
    bad = {m for m in _graph()[f"{PACKAGE}.schedule.program"] if m.startswith((f"{PACKAGE}.schedule.kinds", f"{PACKAGE}.tml"))}
    assert not bad, f"fusedsched.schedule.program imports {sorted(bad)}"


#: docs/architecture.md's layers, bottom-up: a module imports only from layers below its own
#: (or from its own package). The package's ``__init__`` (lazy exports of everything) and the
#: entry points sit above them all.
LAYERS = [
    {"_aliases", "schedule.fields", "schedule.program", "schedule.plateau_state", "shim.binding", "optimizers.adagrad",
     "optimizers.graphsafe"},
    {"schedule.kinds", "ops", "optimizers.adam", "optimizers.sgd"},
    {"schedule.reference", "schedule.errors", "convert.common", "shim.skipping", "shim.hyperparameters"},
    {"tml.config", "shim.checkpoint", "shim.engines"},
    {"shim.scheduler"},
    {"tml.builders", "shim.graphs", "convert.torch", "convert.stacks", "tools.plotting"},
    {"convert"},
    {"integrations"},
    {"tools"},
    {"tools.cli"},
    {"__main__"},
    {"schedule", "optimizers", "shim", "tml"},
]


def _layer_of(module: str) -> tuple[str, int]:
    parts = module.split(".")[1:]
    for n in range(len(parts), 0, -1):
        top = ".".join(parts[:n])
        for level, names in enumerate(LAYERS):
            if top in names:
                return top, level
    return ".".join(parts[:1]), len(LAYERS)


def test_every_module_has_a_layer():
    unplaced = sorted({_layer_of(m)[0] for m in _modules() if m != PACKAGE} - set().union(*LAYERS))
    assert not unplaced, f"modules with no layer in LAYERS (add them, and to docs/architecture.md): {unplaced}"


def test_imports_only_reach_lower_layers():
    upward = []
    for module, targets in _graph().items():
        if module == PACKAGE:
            continue
        top, level = _layer_of(module)
        for target in targets:
            other, other_level = _layer_of(target)
            if target.startswith(f"{PACKAGE}.") and other != top and other_level >= level:
                upward.append(f"{module} (layer {level}) imports {target} (layer {other_level})")
    assert not upward, "imports that do not go down a layer:\n  " + "\n  ".join(sorted(upward))
