"""The package's architecture, checked from the source: the module graph has no
cycles (imports inside functions count), no module imports another stage's private
modules, and data flows one way: io -> recon -> spectra -> segmentation."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import spectrotomo

ROOT = Path(spectrotomo.__file__).parent
#: Stages in data-flow order; a stage may import only earlier ones (and the shared core).
ORDER = ("io", "recon", "spectra", "segmentation")
#: Modules at the package root every stage may use.
SHARED = {"spectrotomo", "spectrotomo._model", "spectrotomo._provenance", "spectrotomo._backend",
          "spectrotomo._physics", "spectrotomo._figure"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (``from pkg import mod`` counts as
    ``pkg.mod`` where ``mod`` is a module or sub-package)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("spectrotomo")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("spectrotomo"):
                target = node.module
            else:
                continue
            found.add(target)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if (ROOT.parent / Path(*sub.split("."))).with_suffix(".py").exists() or \
                        (ROOT.parent / Path(*sub.split(".")) / "__init__.py").exists():
                    found.add(sub)
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in ROOT.rglob("*.py")}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles between modules; edges into a package's ``__init__`` (re-exports) are
    left out, since every sub-module of a package reaches its ``__init__``."""
    edges = {m: {d for d in deps if d in graph and not _is_package(d)} for m, deps in graph.items()}
    found, state = [], {}

    def visit(module, trail):
        state[module] = "open"
        for dep in sorted(edges.get(module, ())):
            if state.get(dep) == "open":
                found.append(trail[trail.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, trail + [dep])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    return found


def _is_package(name: str) -> bool:
    return (ROOT.parent / Path(*name.split(".")) / "__init__.py").exists()


def _stage(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycles():
    graph = _graph()
    assert "spectrotomo.recon.prep._center" in graph
    assert _cycles(graph) == []


def test_no_private_imports_across_stages():
    bad = []
    for module, deps in _graph().items():
        for dep in deps:
            if dep in SHARED or not dep.startswith("spectrotomo."):
                continue
            private = any(p.startswith("_") for p in dep.split(".")[1:])
            if private and _stage(dep) != _stage(module):
                bad.append(f"{module} -> {dep}")
    assert bad == []


@pytest.mark.parametrize("stage", ORDER)
def test_stages_import_only_earlier_stages(stage):
    allowed = set(ORDER[:ORDER.index(stage) + 1])
    if stage != "io":
        allowed.discard("io")  # readers and the store are the pipeline's business
    bad = sorted(f"{m} -> {d}" for m, deps in _graph().items() if _stage(m) == stage
                 for d in deps if d.startswith("spectrotomo.") and d not in SHARED
                 and _stage(d) not in allowed)
    assert bad == []
