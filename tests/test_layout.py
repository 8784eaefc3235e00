"""The code's layout: every compare module imports on its own, the project's modules import
each other in one direction (no cycle), and none hides a sibling import inside a function.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("wavetraj", "wavefield", "raytrace", "compare")
#: No project module is longer than this (lines) unless it is one idea listed here.
MAX_LINES = 400
ONE_IDEA = {
    "raytrace/wave_potential.py",  # the self-consistent and field Wave Potentials
    "wavetraj/schema.py",  # the Dataset contract
}


def _modules():
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    is_package = MODULES[module].name == "__init__.py"
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imports(module: str) -> tuple[set[str], list[tuple[int, str]]]:
    """(project modules imported at module level, [(line, name)] imported in functions)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    top, local = set(), []

    def project(name: str) -> str | None:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        return name or None

    def names(node):
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        target = _resolve(module, node)
        found = [f"{target}.{a.name}" for a in node.names]
        return [n if project(n) == n else target for n in found]

    def visit(node, inside: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for name in names(child):
                    mod = project(name)
                    if mod and mod != module:
                        (local.append((child.lineno, mod)) if inside else top.add(mod))
            is_def = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, inside or is_def)

    visit(tree, False)
    return top, local


GRAPH = {m: _imports(m)[0] for m in MODULES}


def test_no_import_cycle():
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(GRAPH[m]):
            if n.startswith(m + ".") or m.startswith(n + "."):
                continue  # a package and its own submodules
            if state.get(n) == 1:
                cycle = [*stack[stack.index(n) :], n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                walk(n)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            walk(m)


def test_no_function_local_imports_of_project_modules():
    hidden = [
        f"{MODULES[m].relative_to(ROOT)}:{line} imports {name}"
        for m in MODULES
        for line, name in _imports(m)[1]
        if name.partition(".")[0] == m.partition(".")[0]  # a sibling, not another package
    ]
    assert not hidden, "function-local imports of sibling modules:\n" + "\n".join(hidden)


def test_wavefield_and_raytrace_never_import_each_other():
    for a, b in (("wavefield", "raytrace"), ("raytrace", "wavefield")):
        bad = [m for m in GRAPH if m.startswith(a) for n in GRAPH[m] if n.startswith(b)]
        assert not bad, f"{a} imports {b}: {bad}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("compare")))
def test_every_compare_module_imports_on_its_own(module):
    proc = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr


def test_modules_stay_small_or_are_one_idea():
    long = {
        str(p.relative_to(ROOT)): n
        for p in MODULES.values()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert set(long) <= ONE_IDEA, f"modules over {MAX_LINES} lines: {long}"


def test_no_global_matplotlib_backend_switch():
    for path in MODULES.values():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert "matplotlib.pyplot" not in [a.name for a in node.names], path
            if isinstance(node, ast.ImportFrom):
                assert node.module != "matplotlib.pyplot", path
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                assert ast.unparse(node.func) != "matplotlib.use", path
