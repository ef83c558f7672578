"""The package's architecture, held by its imports: layers only point down, and no module imports itself back.

Imports are read from the source with ``ast`` (every ``import`` and ``from … import``, at module level or inside
functions, but not those under ``if TYPE_CHECKING:``, which never run), plus the module paths a package's
``_LAZY`` table names (lazy attributes are imports that happen on first use).  Each module belongs to the
component of the longest matching prefix in :data:`LAYERS`; a component may import its own modules and any
component of a lower layer, never one of its own layer or above.
"""
from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import clfkit

SRC = Path(clfkit.__file__).resolve().parent

# Bottom to top.  Components on one line are independent of each other.
LAYERS = [
    ("clfkit.version", "clfkit.errors", "clfkit._lazy"),
    ("clfkit.spec", "clfkit.io", "clfkit.parallel", "clfkit.devices"),
    ("clfkit.vision",),
    ("clfkit.report", "clfkit.artifacts"),
    ("clfkit.data",),
    ("clfkit.runtime", "clfkit.models"),
    ("clfkit.train",),
    ("clfkit.export",),
    ("clfkit.bench", "clfkit.serve", "clfkit.cluster"),
    ("clfkit.demo",),
    ("clfkit.api", "clfkit.cli"),
    ("clfkit",),  # the root package: the public API, which may name anything
]
RANK = {component: rank for rank, names in enumerate(LAYERS) for component in names}


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _resolve(name: str) -> str | None:
    """The clfkit module an imported dotted name refers to (a module, or the module defining a name)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "clfkit")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.split(".")[0] == "clfkit":
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets):
            found.update(v.value for v in getattr(node.value, "values", []) if isinstance(v, ast.Constant))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree)), f"{module}: relative import"
    return {target for name in found if (target := _resolve(name)) and target != module}


def component_of(module: str) -> str:
    best = max((c for c in RANK if module == c or module.startswith(c + ".")), key=len, default=None)
    assert best is not None, f"{module} is in no layer of tests/test_layers.py: add its component there"
    return best


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_module_has_a_layer():
    for module in MODULES:
        component_of(module)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, targets in graph.items():
        if module.endswith(".__main__"):  # entry points (python -m …) sit on top of everything
            continue
        here = component_of(module)
        for target in targets:
            there = component_of(target)
            if there != here and RANK[there] >= RANK[here]:
                wrong.append(f"{module} ({here}, layer {RANK[here]}) imports {target} ({there}, layer {RANK[there]})")
    return sorted(wrong)


def test_imports_only_point_down():
    wrong = upward_imports(GRAPH)
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components: any component with more than one module is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            strongconnect(module)
    return cycles


def test_no_import_cycles():
    cycles = import_cycles(GRAPH)
    assert not cycles, "import cycles: " + "; ".join(" ↔ ".join(c) for c in cycles)


def test_the_checks_are_not_vacuous():
    """The graph holds the real edges, and the two rules flag what they are for."""
    assert "clfkit.runtime.engine" in GRAPH["clfkit.cli.infer"]
    assert "clfkit.models.classifier" in GRAPH["clfkit.export.api"]
    assert "clfkit.train.trainer" in GRAPH["clfkit.train"]  # a _LAZY entry counts as an import
    assert "clfkit.runtime.pipeline" in GRAPH["clfkit.runtime.engine"]  # a function-level import counts too
    assert upward_imports({"clfkit.vision.images": {"clfkit.runtime.engine"}})
    assert upward_imports({"clfkit.runtime.engine": {"clfkit.models.classifier"}})  # same layer, other package
    assert not upward_imports({"clfkit.runtime.engine": {"clfkit.runtime.pipeline", "clfkit.spec"}})
    assert import_cycles({"clfkit.a": {"clfkit.b"}, "clfkit.b": {"clfkit.c"}, "clfkit.c": {"clfkit.a"}}) == [
        ["clfkit.a", "clfkit.b", "clfkit.c"]]


def _public_modules() -> list[str]:
    names = ["clfkit"]
    for info in pkgutil.walk_packages(clfkit.__path__, "clfkit."):
        if not info.name.endswith("__main__"):  # running them starts a command
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _public_modules())
def test_every_name_in_all_resolves(name):
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", [])
    assert len(exported) == len(set(exported)), f"{name}.__all__ lists a name twice"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names {missing}, which {name} does not have"


def test_documented_lookups_of_the_public_api_work():
    """The lookups the README shows, in a fresh interpreter where no submodule was imported first (the lazy
    ``clfkit.train.fit`` once recursed forever because ``fit`` was also a submodule)."""
    import subprocess
    import sys

    code = ("import clfkit, clfkit.train\n"
            "from clfkit.train import fit, FitResult, TrainConfig\n"
            "assert callable(clfkit.train.fit) and fit is clfkit.train.fit\n"
            "import clfkit.train.trainer\n"
            "assert callable(clfkit.train.fit)  # importing the submodule does not replace the function\n"
            "from clfkit import split_folder, train_model, export_onnx, load_model, read_metrics\n"
            "assert all(map(callable, (split_folder, train_model, export_onnx, load_model, read_metrics)))\n"
            "from clfkit.export import export_checkpoint\n"
            "from clfkit.bench import run_bench\n"
            "from clfkit.serve import ServeConfig\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
