"""The shape of the project's imports, checked statically (``ast``, nothing imported).

* No import cycle among the project's modules, counting the imports inside functions too: an
  import moved into a function to dodge a cycle is still a cycle here.
* The RTL does not need torch: importing ``hw``, every unit module and ``hw.export`` (what
  ``python -m hw.export`` loads) leaves ``torch`` out of ``sys.modules`` (checked in a fresh
  interpreter), and so does ``sysmodel``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("quant", "hw", "cosim", "synth", "sysmodel", "report", "executor")


def _modules() -> dict[str, Path]:
    """Every module of the project's packages: dotted name -> file."""
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """(imported project module, line, inside a function) for each import of ``name``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                       ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    target = alias.name
                    while target and target not in modules:
                        target = target.rpartition(".")[0]
                    if target:
                        found.append((target, child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[:len(base) - (child.level - 1)]
                    src = ".".join(base + ([child.module] if child.module else []))
                else:
                    src = child.module or ""
                for alias in child.names:
                    sub = f"{src}.{alias.name}"
                    target = sub if sub in modules else src
                    while target and target not in modules:
                        target = target.rpartition(".")[0]
                    if target and target != name:
                        found.append((target, child.lineno, in_function))
            visit(child, inner)

    visit(tree, False)
    return found


def _graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], tuple[int, bool]]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    where: dict[tuple[str, str], tuple[int, bool]] = {}
    for name, path in modules.items():
        for target, line, in_function in _imports(name, path, modules):
            if target == name:
                continue
            graph[name].add(target)
            where.setdefault((name, target), (line, in_function))
    return graph, where


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out = []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_the_graph_sees_the_imports():
    graph, where = _graph()
    # a top-level import, a relative one and one inside a function are all found
    assert "quant.constants" in graph["hw.mx_mul"]
    assert "sysmodel.measured" in graph["sysmodel.hardware"]
    assert "hw.export" in graph["hw.spu"]


def test_no_import_cycle():
    graph, where = _graph()
    cycles = _cycles(graph)
    lines = []
    for comp in cycles:
        members = set(comp)
        for a in comp:
            for b in sorted(graph[a] & members):
                line, in_function = where[(a, b)]
                lines.append(f"{a}:{line} imports {b}" + (" (inside a function)"
                                                          if in_function else ""))
    assert not cycles, "import cycles:\n" + "\n".join(lines)


def test_a_cycle_is_found():
    """The checker itself: a two-module cycle (one side inside a function) is reported."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


@pytest.mark.parametrize("code", [
    "import hw, hw.export; hw.export.load_units()",
    "import hw.export; hw.export.main(['--list'])",
    "import sysmodel, sysmodel.measured, sysmodel.hardware, sysmodel.sweep, sysmodel.pim",
    "import quant.constants, quant.fpformat, quant.hbmpim_programs",
], ids=["hw_units", "hw_export_cli", "sysmodel", "quant_constants"])
def test_no_torch(code):
    """``import hw`` and every unit module (what ``python -m hw.export`` loads) need no torch."""
    check = (f"{code}\nimport sys\nbad = sorted(m for m in sys.modules if m == 'torch' or "
             "m.startswith('torch.'))\nassert not bad, bad[:3]\n")
    res = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
