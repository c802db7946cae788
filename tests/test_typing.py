"""The typed API (sdk ships py.typed): mypy in strict mode and pyright accept the
examples and a typed sample, where a stage keeps its function's parameters and
return type, and refuse a wrong call with exactly the expected error."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

TYPING = ROOT / "tests" / "typing"
CHECKED = [str(ROOT / "examples"), str(TYPING / "typed_sample.py")]


def mypy(tmp_path, *paths: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "mypy"), *paths],
        check=False, capture_output=True, text=True, cwd=ROOT, timeout=300,
    )


def pyright(*paths: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("pyright")
    if binary is None:
        pytest.fail("pyright is not installed (pip install -e '.[test]')")
    return subprocess.run([binary, *paths], check=False, capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_mypy_strict_accepts_the_examples_and_the_typed_sample(tmp_path):
    checked = mypy(tmp_path, *CHECKED)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Success: no issues found in 3 source files" in checked.stdout


def test_mypy_refuses_a_wrong_call_with_the_expected_error(tmp_path):
    checked = mypy(tmp_path, str(TYPING / "wrong_call.py"))
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    expected = ('tests/typing/wrong_call.py:17: error: Argument 1 to "__call__" of "Stage" has '
                'incompatible type "str"; expected "int"  [arg-type]')
    assert errors == [expected]


def test_pyright_accepts_the_examples_and_the_typed_sample():
    checked = pyright(*CHECKED)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 errors" in checked.stdout


def test_pyright_refuses_a_wrong_call_with_the_expected_error():
    checked = pyright(str(TYPING / "wrong_call.py"))
    errors = [line.strip() for line in checked.stdout.splitlines() if " - error: " in line]
    assert len(errors) == 1, checked.stdout
    assert errors[0].endswith(
        'wrong_call.py:17:16 - error: Argument of type "Literal[\'a\']" cannot be assigned to '
        'parameter "x" of type "int" in function "__call__"'
    )
