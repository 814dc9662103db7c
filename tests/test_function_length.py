"""The style rule "no function over 60 lines" (docs/testing.md), the sandbox included: every ``def`` and
``async def`` in the package, nested ones too, counted from its first line (decorators excluded) to its last."""

from __future__ import annotations

import ast
from pathlib import Path

import airflow_provider_debitura

PACKAGE = Path(airflow_provider_debitura.__file__).resolve().parent
LIMIT = 60


def function_lengths(root: Path = PACKAGE) -> list[tuple[int, str]]:
    """``(lines, "path:line name")`` for every function under ``root``, longest first."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno is not None
                where = f"{path.relative_to(root.parent)}:{node.lineno} {node.name}"
                found.append((node.end_lineno - node.lineno + 1, where))
    return sorted(found, reverse=True)


def test_no_function_is_longer_than_60_lines() -> None:
    lengths = function_lengths()
    assert len(lengths) > 500  # the whole package was read, the sandbox included
    assert any("sandbox/" in where for _, where in lengths)
    too_long = [f"{where} ({lines} lines)" for lines, where in lengths if lines > LIMIT]
    assert not too_long, f"functions over {LIMIT} lines (split them): {', '.join(too_long)}"


def test_the_count_includes_docstrings_and_nested_functions(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(58))
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(
        f'def outer():\n    """Doc."""\n{body}\n\n\nasync def inner_free():\n    def nested():\n        pass\n'
    )
    lengths = dict((where.split(" ")[1], lines) for lines, where in function_lengths(tmp_path / "pkg"))
    assert lengths == {"outer": 60, "inner_free": 3, "nested": 2}
