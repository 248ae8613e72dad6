"""The io package's module graph is acyclic, counting imports inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import spectrotomo.io

IO = Path(spectrotomo.io.__file__).parent


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in IO.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                deps |= {node.module} if node.module else {a.name for a in node.names}
        graph[path.stem] = deps
    return graph


def _cycles(graph):
    found, state = [], {}

    def visit(module, trail):
        state[module] = "open"
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == "open":
                found.append(trail[trail.index(dep):] + [dep])
            elif dep in graph and dep not in state:
                visit(dep, trail + [dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_io_modules_import_without_cycles():
    graph = _graph()
    assert {"_read", "_backends", "_assemble", "_nxtomo", "_series"} <= set(graph)
    assert _cycles(graph) == []
