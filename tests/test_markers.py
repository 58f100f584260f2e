"""Every test that drives Chromium carries ``@pytest.mark.browser``, so ``-m "not browser"`` really skips them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
#: What a test that drives the browser says in its own body.
BROWSER_WORDS = re.compile(r"sync_playwright|chromium|playwright|new_page\(")


def _marks(node: ast.AST) -> set[str]:
    """``pytest.mark.<name>`` names in a decorator list or a ``pytestmark`` value."""
    return {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Attribute) and n.value.attr == "mark"}


def browser_tests_without_the_marker(folder: Path = TESTS) -> list[str]:
    """``file::test`` for each test function whose body (or a fixture it takes) drives Chromium but which
    is not marked ``browser`` (on itself or by the module's ``pytestmark``)."""
    missing = []
    for path in sorted(folder.glob("test_*.py")):
        if path.resolve() == Path(__file__).resolve():
            continue  # this file names the browser words in its own fixtures
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        module_marks: set[str] = set()
        fixtures: dict[str, bool] = {}
        funcs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets):
                module_marks |= _marks(node.value)
        for f in funcs:
            if not f.name.startswith("test"):
                fixtures[f.name] = bool(BROWSER_WORDS.search(ast.get_source_segment(source, f) or ""))
        for f in funcs:
            if not f.name.startswith("test"):
                continue
            body = ast.get_source_segment(source, f) or ""
            drives = bool(BROWSER_WORDS.search(body)) or any(fixtures.get(a.arg) for a in f.args.args)
            marks = module_marks | set().union(*(_marks(d) for d in f.decorator_list))
            if drives and "browser" not in marks:
                missing.append(f"{path.name}::{f.name}")
    return missing


def test_every_browser_test_is_marked():
    assert browser_tests_without_the_marker() == []


def test_the_check_finds_an_unmarked_browser_test(tmp_path):
    (tmp_path / "test_x.py").write_text(
        "import pytest\n\n@pytest.fixture\ndef page():\n    return sync_playwright()\n\n"
        "def test_a(page):\n    pass\n\n@pytest.mark.browser\ndef test_b(page):\n    pass\n\n"
        "def test_c():\n    p.chromium.launch()\n\ndef test_d():\n    pass\n")
    assert browser_tests_without_the_marker(tmp_path) == ["test_x.py::test_a", "test_x.py::test_c"]
