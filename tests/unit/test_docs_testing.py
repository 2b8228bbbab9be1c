"""docs/testing.md can't rot: its examples run as a bot author would run them — copied into a
project of their own, with the pytest configuration the page shows, in a fresh pytest that finds
the ``bot_harness`` fixture through botkit's entry point."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "testing.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    return [code for lang, code in BLOCK.findall(DOC.read_text(encoding="utf-8"))
            if lang == language]


def test_the_first_example_is_a_complete_test_under_15_lines() -> None:
    first = blocks("python")[0]
    assert len(first.splitlines()) < 15
    assert "from botkit import Bot" in first
    assert "async def test_" in first


def test_every_python_example_passes_as_written(tmp_path: Path) -> None:
    examples = blocks("python")
    (toml,) = blocks("toml")
    (tmp_path / "pyproject.toml").write_text(toml, encoding="utf-8")
    tests = [code for code in examples if "def test_" in code]
    assert len(tests) == len(examples) >= 4
    for index, code in enumerate(tests):
        ast.parse(code)
        (tmp_path / f"test_example_{index}.py").write_text(code, encoding="utf-8")
    # The examples of this repository's bots import them from the project (``bots.*``).
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(tests)} passed" in result.stdout
