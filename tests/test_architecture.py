"""The package's structure, read from its source: no import cycles (deferred imports
included), no private names imported across modules, and the layering of ARCHITECTURE.md."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "l2dynamics"

# Layers (ARCHITECTURE.md): a module of a lower layer never imports a higher one.
FOUNDATION = ("errors", "config", "results", "files", "progress")
ALONE = ("theory", "autol2", "losses", "models", "data", "optim", "torch")
HIGHER = ("train", "sweep", "analysis", "experiments", "cli", "predict")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def imports(name: str) -> list[tuple[str, str]]:
    """(module imported, name imported from it or "") for every import of the package's own
    modules in module ``name``, at any depth (deferred imports in functions included)."""
    path = MODULES[name]
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, "") for a in node.names if a.name.split(".")[0] == PACKAGE]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((sub, "") if sub in MODULES else (base, alias.name))
    return out


def graph() -> dict[str, set[str]]:
    return {m: {t for t, _ in imports(m) if t in MODULES and t != m} for m in MODULES}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle found by a depth-first search (one per back edge)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    return found


def test_the_module_graph_has_no_cycle():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_a_private_name_of_another():
    private = [
        f"{m} imports {name} from {target}"
        for m in MODULES
        for target, name in imports(m)
        if name.startswith("_") and target != m
    ]
    assert private == []


def test_no_test_imports_a_private_name():
    private = [
        f"{path.name} imports {alias.name} from {node.module}"
        for path in sorted(Path(__file__).parent.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE)
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert private == []


def _top(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


@pytest.mark.parametrize("lower", FOUNDATION + ALONE)
def test_lower_layers_never_import_higher_ones(lower):
    bad = [
        f"{m} imports {t}"
        for m, targets in graph().items()
        if _top(m) == lower
        for t in targets
        if _top(t) in HIGHER
    ]
    assert bad == []


def test_foundation_modules_import_only_the_foundation():
    bad = [
        f"{m} imports {t}"
        for m, targets in graph().items()
        if _top(m) in FOUNDATION
        for t in targets
        if _top(t) not in FOUNDATION
    ]
    assert bad == []


def test_analysis_reads_the_store_and_never_trains():
    bad = [
        f"{m} imports {t}"
        for m, targets in graph().items()
        if _top(m) == "analysis"
        for t in targets
        if _top(t) in ("train", "experiments", "cli", "predict")
        or (_top(t) == "sweep" and t != "l2dynamics.sweep.store")
    ]
    assert bad == []
