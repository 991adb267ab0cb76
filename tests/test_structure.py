"""The package's shape: imports run one way, and every module says its concern in its docstring."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "hybridsearch"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imports(path: Path) -> set[str]:
    """hybridsearch modules that ``path`` imports, at the top or inside functions (not for type checking only)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("hybridsearch")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hybridsearch"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # `from pkg import module`
    return found


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in paths.items():
        own = package_of(name, path)
        targets = {t for t in imports(path) if t in paths}
        # A module's own package (and its __init__ re-exports) is not a dependency of its own.
        edges[name] = {t for t in targets if t != name and not (t == own or (name.startswith(t + ".")))}
    return edges


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_imports_inside_the_package_form_no_circle() -> None:
    edges = graph()
    assert edges.get("hybridsearch.study")
    assert cycle(edges) is None, " -> ".join(cycle(edges))


def test_the_cycle_finder_finds_a_circle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_models_know_nothing_of_the_search_machinery() -> None:
    for path in (PACKAGE / "models").rglob("*.py"):
        text = path.read_text()
        for library in ("optuna", "mlflow", "hydra", "lightning"):
            assert f"import {library}" not in text and f"from {library}" not in text, (path, library)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_states_its_concern(path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc and len(doc.splitlines()[0]) > 20, f"{path} has no docstring naming its concern"


def test_the_config_checks_load_neither_lightning_nor_mlflow() -> None:
    """Bad input ends before the training stack loads (ten seconds on 2 cores): what the checks
    import, and what the package imports for ``python -m`` (the workers' module too, which starts
    the fork server first), must stay clear of it."""
    code = "import sys, hybridsearch.__main__, hybridsearch.checks, hybridsearch.workers\n"
    code += "print(sorted({m.split('.')[0] for m in sys.modules}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(ast.literal_eval(out))
    assert "torch" in loaded and "optuna" in loaded  # the checks build the space and the pruner
    assert not loaded & {"lightning", "mlflow"}, loaded & {"lightning", "mlflow"}
