"""The house rules of the import graph, checked on every run: among `rag_service`, `pipelines`
and `benchmarks` no import cycle (counting imports inside functions and under TYPE_CHECKING:
a lazy import hides a cycle, it does not remove it), and no private name (`_x`) imported from
another module. A rule that only a review enforces drifts; this one fails the build."""

from __future__ import annotations

import ast
import graphlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("rag_service", "pipelines", "benchmarks")


def module_files() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imports_of(path: Path, name: str, modules: dict[str, Path]) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import in the file, at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                # `from pkg import module` depends on that module; `from module import name` on the module.
                found.append((submodule, None, node.lineno) if submodule in modules else (base, alias.name, node.lineno))
    return [(m, n, line) for m, n, line in found if m.split(".")[0] in PACKAGES]


def owner(module: str, modules: dict[str, Path]) -> str | None:
    while module and module not in modules:
        module = module.rpartition(".")[0]
    return module or None


def graph() -> tuple[dict[str, set[str]], list[str]]:
    modules = module_files()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    reach_ins = []
    for name, path in modules.items():
        for target, imported, line in imports_of(path, name, modules):
            target = owner(target, modules)
            if target is None or target == name:
                continue
            # A package's own __init__ importing its submodules is how a package is assembled, not a cycle.
            if not (path.name == "__init__.py" and target.startswith(name + ".")):
                edges[name].add(target)
            if imported and imported.startswith("_") and not imported.startswith("__"):
                reach_ins.append(f"{path.relative_to(ROOT)}:{line} imports {target}.{imported}")
    return edges, reach_ins


def test_no_import_cycles():
    edges, _ = graph()
    try:
        tuple(graphlib.TopologicalSorter(edges).static_order())
    except graphlib.CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None


def test_no_private_names_imported_across_modules():
    _, reach_ins = graph()
    assert reach_ins == []


def test_the_checks_see_function_level_imports_and_would_fail(tmp_path, monkeypatch):
    # The check itself: a cycle hidden in a function, and a private import, are both reported.
    pkg = tmp_path / "rag_service"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from rag_service.b import helper\n")
    (pkg / "b.py").write_text("def helper():\n    from rag_service.a import _secret\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGES", ("rag_service",))
    edges, reach_ins = graph()
    assert edges["rag_service.a"] == {"rag_service.b"} and edges["rag_service.b"] == {"rag_service.a"}
    assert reach_ins == ["rag_service/b.py:2 imports rag_service.a._secret"]
