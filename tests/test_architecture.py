"""The one-way imports of docs/architecture.md hold in the code."""

from __future__ import annotations

import ast
import re
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


# A cited project document: a docs/ path, or a capitalised name such as README.md (output files like report.md
# are lower-case and not documents).
CITED_DOCUMENT = re.compile(r"\b(docs/[\w/.-]+\.md|[A-Z][A-Z_]*\.md)\b")
CITING_FILES = ("*.md", "docs/**/*.md", *(f"{package}/**/*.py" for package in PROJECT_PACKAGES), "tests/*.py")


def cited_documents(text: str) -> set[str]:
    return set(CITED_DOCUMENT.findall(text))


def test_docs_and_code_cite_only_documents_that_are_in_the_repository() -> None:
    missing = []
    for pattern in CITING_FILES:
        for path in sorted(REPO_ROOT.glob(pattern)):
            if path == Path(__file__):
                continue
            for cited in cited_documents(path.read_text(encoding="utf-8")):
                if not ((REPO_ROOT / cited).is_file() or (path.parent / cited).is_file()):
                    missing.append(f"{path.relative_to(REPO_ROOT)} cites {cited}")
    assert not missing, "cited documents missing from the repository:\n" + "\n".join(missing)


def test_the_citation_checker_sees_documents_but_not_report_files() -> None:
    text = "see DESIGN.md section 6, docs/evaluation.md and README.md; writes report.md and results.md"
    assert cited_documents(text) == {"DESIGN.md", "docs/evaluation.md", "README.md"}
