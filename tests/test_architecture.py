"""The one-way imports of docs/architecture.md hold in the code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("masking", "trainers", "rl_env", "evaluation", "pipelines", "tune_configs")
ALLOWED_IMPORTS = {
    "masking": {"masking"},
    "trainers": {"trainers", "masking"},
    "rl_env": {"rl_env", "trainers", "masking"},
    "evaluation": {"evaluation", "trainers", "masking"},
    "pipelines": {"pipelines", "evaluation", "rl_env", "trainers", "masking"},
    "tune_configs": set(PROJECT_PACKAGES),
}
CLI_MODULE = REPO_ROOT / "pipelines" / "cli.py"  # the top of the graph: it may reach tune_configs too
PURE_PACKAGE_FORBIDDEN = {"ray", "pyarrow", "cv2", "pandas"}  # masking/ is pure torch and numpy


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
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
    bad.write_text("import ray\nfrom pipelines.cli import main\nimportlib.import_module('evaluation.report')\n")
    assert imported_top_levels(bad) == {"ray", "pipelines", "evaluation"}
