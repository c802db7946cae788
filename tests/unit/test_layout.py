"""The shape of the code, as the project keeps it: small modules and functions, one
package that talks to Redis, one module that reads the environment, and the
packages' dependencies pointing one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("sdk", "workers", "controlplane")
MODULE_LINES, FUNCTION_LINES = 400, 60


def modules(*packages: str):
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path, ast.parse(path.read_text(), str(path))


def imported(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_modules_and_functions_stay_small():
    too_big = []
    for path, tree in modules(*PACKAGES):
        lines = path.read_text().count("\n")
        if lines > MODULE_LINES:
            too_big.append(f"{relative(path)}: {lines} lines")
        too_big += [
            f"{relative(path)}:{node.lineno} {node.name}()"
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > FUNCTION_LINES
        ]
    assert too_big == []


def test_only_the_transport_package_talks_to_redis():
    outside = [
        f"{relative(path)} imports {name}"
        for path, tree in modules(*PACKAGES)
        if not relative(path).startswith("sdk/transport/")
        for name in imported(tree)
        if name.split(".")[0] in ("redis", "rq")
    ]
    assert outside == []


def test_only_the_settings_module_reads_the_environment():
    readers = [
        relative(path)
        for path, tree in modules(*PACKAGES)
        if relative(path) != "sdk/settings.py"
        and any(isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
                and isinstance(node.value, ast.Name) and node.value.id == "os"
                for node in ast.walk(tree))
    ]
    assert readers == []


def test_dependencies_point_one_way():
    wrong = [
        f"{relative(path)} imports {name}"
        for package, forbidden in (("sdk", ("controlplane", "workers")),
                                   ("workers", ("controlplane", "sqlalchemy", "flask")))
        for path, tree in modules(package)
        for name in imported(tree)
        if name.split(".")[0] in forbidden and relative(path) != "sdk/worker.py"
    ]
    assert wrong == []
