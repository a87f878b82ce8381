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
    assert {"fusedsched.schedule.fields", "fusedsched.schedule.program", "fusedsched.tml.config",
            "fusedsched.schedule.kinds"} <= set(graph)
    assert "fusedsched.schedule.program" in graph["fusedsched.ops._reference"]  # `from ..schedule.program import`
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


def test_the_op_and_its_backends_know_no_kind():
    """The op evaluates tables, whatever kinds compiled them; only ``ops.host`` compiles a config."""
    graph = _graph()
    bad = {f"{m} imports {t}" for m in graph if m.startswith(f"{PACKAGE}.ops") and m != f"{PACKAGE}.ops.host"
           and m != f"{PACKAGE}.ops" for t in graph[m] if t.startswith(f"{PACKAGE}.schedule.kinds")}
    assert not bad, sorted(bad)


#: docs/architecture.md's wings, bottom-up: a module imports only from its own wing and the wings
#: below it. The package's ``__init__`` (lazy exports of everything) and ``__main__`` sit above them
#: all; ``_aliases`` (the old module paths) below them all, importing nothing.
WINGS = ["schedule", "ops", "optimizers", "shim", "tml", "convert", "integrations", "tools"]

#: Within a wing, its modules' layers, bottom-up: a module imports only from layers below its own
#: (or from its own package: a subpackage such as ``schedule.kinds`` is one module here). A wing's
#: ``__init__`` sits above its modules.
LAYERS = {
    "schedule": [{"fields", "plateau_state", "program"}, {"kinds"}, {"reference", "errors"}],
    "ops": [{"schema", "_native", "_reference", "_triton"}, {"backends"}, {"launcher", "host"}],
    "optimizers": [{"group_key", "fused"}, {"graphsafe"}, {"adam", "sgd", "adagrad"}],
    "shim": [{"skipping", "hyperparameters", "recent_rates"}, {"binding", "checkpoint"}, {"engine"},
             {"host_engine", "device_engine", "switching"}, {"contract", "views"}, {"scheduler"}, {"graphs"}],
    "tml": [{"config"}, {"grouping"}, {"builders"}],
    "convert": [{"common", "builders"}, {"functions"}, {"torch", "stack_shim"}, {"timm", "deepspeed", "megatron"}],
    "integrations": [{"huggingface", "lightning"}],
    "tools": [{"models", "plotting", "traffic", "timing"}, {"bench"}, {"demo"}, {"cli"}],
}
TOP, BOTTOM = {"", "__main__"}, {"_aliases"}


def _place(module: str) -> tuple[int, int, str]:
    """``(wing level, layer in the wing, unit)``: where ``module`` sits; ``unit`` names what it belongs to."""
    parts = module.split(".")[1:]
    head = parts[0] if parts else ""
    if head in TOP:
        return len(WINGS), 0, head
    if head in BOTTOM:
        return -1, 0, head
    if head not in WINGS:
        raise KeyError(module)
    layers = LAYERS[head]
    if len(parts) == 1:  # the wing's __init__
        return WINGS.index(head), len(layers), head
    for level, names in enumerate(layers):
        if parts[1] in names:
            return WINGS.index(head), level, f"{head}.{parts[1]}"
    raise KeyError(module)


def test_every_module_has_a_place():
    unplaced = []
    for module in _modules():
        try:
            _place(module)
        except KeyError:
            unplaced.append(module)
    assert not unplaced, f"modules with no wing or layer in WINGS / LAYERS (add them, and to docs/architecture.md): {unplaced}"


def test_imports_only_reach_lower_wings_and_layers():
    upward = []
    for module, targets in _graph().items():
        wing, layer, unit = _place(module)
        for target in targets:
            if not target.startswith(f"{PACKAGE}.") or module == PACKAGE:
                continue
            other_wing, other_layer, other_unit = _place(target)
            if other_unit == unit:
                continue  # within one module or subpackage
            if other_wing > wing or (other_wing == wing and other_layer >= layer):
                upward.append(f"{module} ({unit}) imports {target} ({other_unit})")
    assert not upward, "imports that do not go down a wing or a layer:\n  " + "\n  ".join(sorted(upward))


def test_the_wing_order_is_checked():
    """The rule above, on a made-up graph: an import up a wing, and one up a layer, are found."""
    assert _place("fusedsched.ops.launcher") > _place("fusedsched.schedule.kinds.cosine")
    assert _place("fusedsched.shim.scheduler")[:2] > _place("fusedsched.shim.engine")[:2]
    assert _place("fusedsched.tools.cli")[:2] > _place("fusedsched.convert")[:2]
