"""The one-way imports of docs/architecture.md hold in the code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("common", "masking", "trainers", "rl_env", "evaluation", "pipelines", "tune_configs")
ALLOWED_IMPORTS = {
    "common": {"common"},
    "masking": {"common", "masking"},
    "trainers": {"common", "trainers", "masking"},
    "rl_env": {"common", "rl_env", "trainers", "masking"},
    "evaluation": {"common", "evaluation", "trainers", "masking"},
    "pipelines": {"common", "pipelines", "evaluation", "rl_env", "trainers", "masking"},
    "tune_configs": set(PROJECT_PACKAGES),
}
CLI_MODULE = REPO_ROOT / "pipelines" / "cli" / "main.py"  # the top of the graph: it may reach tune_configs too
PURE_PACKAGE_FORBIDDEN = {"ray", "pyarrow", "cv2", "pandas"}  # masking/ is pure torch and numpy


def _is_import_module_call(node: ast.AST) -> bool:
    """`importlib.import_module("pkg.mod")` with a literal name: the CLI reaches its verbs this way."""
    if not isinstance(node, ast.Call) or getattr(node.func, "attr", getattr(node.func, "id", "")) != "import_module":
        return False
    return bool(node.args) and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif _is_import_module_call(node):
            names.add(node.args[0].value.split(".")[0])
    return names


def package_files(package: str) -> list[Path]:
    return sorted((REPO_ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PROJECT_PACKAGES)
def test_package_imports_only_the_layers_below_it(package: str) -> None:
    violations = []
    for path in package_files(package):
        allowed = set(PROJECT_PACKAGES) if path == CLI_MODULE else ALLOWED_IMPORTS[package]
        for name in imported_top_levels(path) & set(PROJECT_PACKAGES):
            if name not in allowed:
                violations.append(f"{path.relative_to(REPO_ROOT)} imports {name}")
    assert not violations, "imports against the layering of docs/architecture.md:\n" + "\n".join(violations)


def test_masking_is_pure_torch_without_ray_or_io_libraries() -> None:
    offenders = [
        f"{path.relative_to(REPO_ROOT)} imports {name}"
        for path in package_files("masking")
        for name in imported_top_levels(path) & PURE_PACKAGE_FORBIDDEN
    ]
    assert not offenders, "\n".join(offenders)


def test_the_import_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import ray\nfrom pipelines.cli.main import main\nimportlib.import_module('evaluation.report')\n")
    assert imported_top_levels(bad) == {"ray", "pipelines", "evaluation"}
