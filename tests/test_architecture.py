"""The package's layout is its architecture: layers import downwards only, no cycles.

Every ``import`` statement in ``gradspec/`` (module level and inside functions alike) is
read with ``ast``, resolved to the gradspec module it names, and checked against the
layer table below, which the README's "Architecture" section draws. The module paths
the README lists are imported by path and compared with the attribute of the same name.
"""

import ast
import importlib
import re
from pathlib import Path

import pytest

import gradspec

PACKAGE = Path(gradspec.__file__).parent
ROOT = PACKAGE.parent

#: Top to bottom: a unit may import the units of lower layers, and itself.
LAYERS = (
    ("gradspec.__main__",),
    ("gradspec.cli",),
    ("gradspec.plots",),
    ("gradspec.sweep",),
    ("gradspec.training",),
    ("gradspec.remedies",),
    ("gradspec.verdicts",),
    ("gradspec.measure", "gradspec.interop"),
    ("gradspec.cells",),
    ("gradspec.init",),
    ("gradspec.theory",),
    ("gradspec._checks", "gradspec._precision", "gradspec._json", "gradspec._nonlinearities"),
)
#: Old module paths kept for existing imports: each is the module it names, nothing else.
ALIASES = {
    "gradspec.tasks": "gradspec.training.tasks",
    "gradspec.style": "gradspec.plots.style",
    "gradspec.figures": "gradspec.plots.figures",
}
#: No module past this many lines (the issue's ~600: a module a reader can hold in mind).
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The gradspec modules ``path`` imports, anywhere in the file."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                stem = here[: len(here) - node.level + 1]
                base = ".".join(stem + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
        else:
            continue
        found |= {t for t in targets if t.split(".")[0] == "gradspec"}
    return found


def _unit(module: str) -> str:
    module = ALIASES.get(module, module)
    for layer in LAYERS:
        for unit in layer:
            if module == unit or module.startswith(unit + "."):
                return unit
    return module  # only the top package itself


def _layer(unit: str) -> int:
    for depth, layer in enumerate(LAYERS):
        if unit in layer:
            return len(LAYERS) - depth
    return len(LAYERS) + 1  # the top package: above everything


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_every_module_has_a_layer():
    unplaced = [m for m in MODULES if m != "gradspec" and _unit(m) == m and m not in
                {u for layer in LAYERS for u in layer}]
    assert not unplaced, f"modules outside the layer table: {unplaced}"


def test_imports_point_down_only():
    wrong = []
    for module, targets in GRAPH.items():
        unit = _unit(module)
        for target in targets:
            other = _unit(target)
            if other != unit and _layer(other) >= _layer(unit):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "upward or sideways imports:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    # Depth-first search for a back edge over the module graph (lazy imports included).
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(GRAPH.get(m, ())):
            if state.get(t) == "open":
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_modules_stay_small():
    files = list(MODULES.values()) + sorted((ROOT / "benchmarks").glob("*.py"))
    big = {str(p.relative_to(ROOT)): n for p in files
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def _readme_modules() -> list[str]:
    table = (ROOT / "README.md").read_text().split("## What is in the box")[1].split("\n## ")[0]
    return sorted(set(re.findall(r"^\| `(gradspec(?:\.\w+)+)`", table, re.M)))


def test_readme_modules_import_by_path():
    listed = _readme_modules()
    assert len(listed) >= 8, listed
    for path in listed:
        module = importlib.import_module(path)
        parent, _, leaf = path.rpartition(".")
        assert getattr(importlib.import_module(parent), leaf) is module, path


@pytest.mark.parametrize("alias, target", sorted(ALIASES.items()))
def test_aliases_are_the_modules_they_name(alias, target):
    assert importlib.import_module(alias) is importlib.import_module(target)


def test_no_public_function_hides_a_module():
    # gradspec.train / verify / predict are functions; their modules have other names.
    for name in gradspec.__all__:
        value = getattr(gradspec, name)
        if callable(value) and not isinstance(value, type(gradspec)):
            assert f"gradspec.{name}" not in MODULES, f"gradspec.{name} hides a module"
