"""The package's layout holds: no import circle, and each side imports only what it may.

The graph is read from the source (every import statement, those inside functions too), so
a lazy import cannot hide a circle or a dependency."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pipeline"

# What each folder may import from the pipeline (besides itself and the shared leaves).
LEAVES = {"pipeline", "pipeline.errors", "pipeline.paths", "pipeline.capture", "pipeline.deadline", "pipeline.board", "pipeline.rows"}
ALLOWED = {
    "pipeline.int8": set(),
    "pipeline.model": {"pipeline.int8"},
    "pipeline.emit": {"pipeline.int8", "pipeline.model"},
    "pipeline.device": {"pipeline.int8", "pipeline.emulation", "pipeline.cli"},
    "pipeline.emulation": {"pipeline.device", "pipeline.cli"},
    "pipeline.footprint": {"pipeline.emulation", "pipeline.device", "pipeline.int8", "pipeline.cli"},
}
DEVICE_SIDE = ("pipeline.device", "pipeline.emulation", "pipeline.footprint", "pipeline.predict",
               "pipeline.verify", "pipeline.emulate")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Each pipeline module -> the pipeline modules it imports (a package import counts as its __init__)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            else:
                continue
            found.update(t for t in targets if t in modules and t != name)
        graph[name] = found
    return graph


def folder(module: str) -> str:
    return ".".join(module.split(".")[:2])


def closure(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every module that can reach itself, with one path that does."""
    found = []
    for start in sorted(graph):
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    found.append(path + [start])
                    stack.clear()
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    return found


def test_there_is_no_import_circle():
    assert cycles(imports()) == []


def test_each_folder_imports_only_what_it_may():
    graph = imports()
    wrong = [f"{module} imports {target}" for module, targets in sorted(graph.items())
             if folder(module) in ALLOWED for target in sorted(targets)
             if target not in LEAVES and folder(target) != folder(module)
             and folder(target) not in ALLOWED[folder(module)]]
    assert wrong == []


@pytest.mark.parametrize("side", DEVICE_SIDE)
def test_the_device_side_never_reaches_the_model_side(side):
    graph = imports()
    for module in [m for m in graph if m == side or m.startswith(side + ".")]:
        reached = sorted(m for m in closure(graph, module) if m.startswith("pipeline.model"))
        assert reached == [], f"{module} reaches {reached}"


def test_the_checker_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"], ["b", "c", "a", "b"],
                                                                         ["c", "a", "b", "c"]]
