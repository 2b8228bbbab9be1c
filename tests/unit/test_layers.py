"""The layers point one way: a static check of botkit's own imports, and what ``import botkit``
loads. A bot author's process must not carry the development tooling (the hub's web stack) or
APScheduler's SQL job stores."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "botkit"

# Each layer may import itself and the layers listed for it (and the shared leaf modules).
LEAVES = {"botkit.errors", "botkit.redact", "botkit.ulid", "botkit.tokens", "botkit.timings"}
ALLOWED: dict[str, set[str]] = {
    "botkit.protocol": set(),
    "botkit.realtime": {"botkit.protocol"},
    "botkit.serverapi": {"botkit.protocol"},
}
NEVER_IMPORT_DEV = ("botkit.protocol", "botkit.realtime", "botkit.serverapi", "botkit.runtime",
                    "botkit.jobs", "botkit.state", "botkit.config", "botkit.testing",
                    "botkit.bot", "botkit.routing", "botkit.context", "botkit.envelope")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[_module_name(path)] = {n for n in names if n.startswith("botkit")}
    return found


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_lower_layers_import_only_what_is_below_them(layer: str) -> None:
    allowed = {layer, *ALLOWED[layer], *LEAVES}
    wrong = {(module, imported) for module, imported_set in _imports().items()
             if _within(module, layer) for imported in imported_set
             if not any(_within(imported, a) for a in allowed)}
    assert not wrong, f"{layer} imports upward: {sorted(wrong)}"


def test_nothing_below_the_cli_imports_dev() -> None:
    # The CLI may: `botkit dev` and `botkit server` are development commands (imported lazily).
    wrong = {(module, imported) for module, imported_set in _imports().items()
             if module.startswith(NEVER_IMPORT_DEV) for imported in imported_set
             if _within(imported, "botkit.dev")}
    assert not wrong, f"runtime code imports the development tooling: {sorted(wrong)}"


def test_only_the_cli_imports_the_ops_endpoint() -> None:
    # The runtime keeps counters; reading them over HTTP is the operator's business, above it.
    wrong = {(module, imported) for module, imported_set in _imports().items()
             if not _within(module, "botkit.cli") and not _within(module, "botkit.ops")
             for imported in imported_set if _within(imported, "botkit.ops")}
    assert not wrong, f"only the CLI may import botkit.ops: {sorted(wrong)}"


def test_import_botkit_loads_no_web_stack_and_no_sql_job_store() -> None:
    code = "import sys, json, botkit; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], check=True,
                                           capture_output=True, text=True).stdout))
    assert "botkit" in loaded
    for unwanted in ("starlette", "uvicorn", "botkit.dev", "apscheduler.jobstores.sqlalchemy",
                     "sqlalchemy"):
        assert unwanted not in loaded, f"import botkit loaded {unwanted}"
