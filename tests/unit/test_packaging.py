"""A production install (`pip install botkit`) runs `botkit run` without the dev hub's web stack,
the file watcher or the test tools; the extras that bring them are what the scripts install."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from botkit.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
NOT_IN_PRODUCTION = {"starlette", "uvicorn", "watchfiles", "pytest", "pytest-asyncio",
                     "pytest-cov", "pytest-timeout", "ruff", "mypy", "jsonschema", "playwright",
                     "centrifuge-python"}


def _name(requirement: str) -> str:
    found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?", requirement)
    assert found is not None, requirement
    return found.group(0).lower()


def test_the_core_dependencies_leave_out_the_hub_and_the_test_tools() -> None:
    core = {_name(requirement) for requirement in PROJECT["dependencies"]}
    assert core & NOT_IN_PRODUCTION == set()
    assert {"websockets", "httpx", "pydantic"} <= core


def test_the_extras_bring_them() -> None:
    extras = PROJECT["optional-dependencies"]
    hub = {_name(requirement) for requirement in extras["hub"]}
    assert hub == {"starlette", "uvicorn", "watchfiles"}
    assert {_name(requirement) for requirement in extras["cluster"]} == {"redis"}
    dev = {_name(requirement) for requirement in extras["dev"]}
    assert "botkit[hub,cluster]" in dev  # the integration tests run the hub and Redis
    assert {"pytest", "pytest-asyncio", "jsonschema"} <= dev


def test_the_scripts_install_every_extra_the_readme_needs() -> None:
    env_script = (ROOT / "scripts" / "_env.sh").read_text(encoding="utf-8")
    installed = re.search(r'pip install [^\n]*-e "\.\[([a-z,-]+)\]"', env_script)
    assert installed is not None
    names = set(installed.group(1).split(","))
    assert names <= set(PROJECT["optional-dependencies"])
    assert {"dev", "bench"} <= names


# Imports of these fail in the child, as if they had never been installed.
_WITHOUT = """
import sys
class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}")
        return None
sys.meta_path.insert(0, _Absent())
from botkit.cli.main import main
sys.exit(main({argv!r}))
"""


def _without(blocked: set[str], *argv: str) -> subprocess.CompletedProcess[str]:
    code = _WITHOUT.format(blocked=blocked, argv=list(argv))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False,
                          env={"PYTHONPATH": str(ROOT), "XSHATHRA_SERVER_API_KEY": "k" * 32,
                               "PATH": "/usr/bin:/bin"})


def test_botkit_check_runs_without_the_hub_and_the_test_tools() -> None:
    # `check` imports every layer `run` does: the runtime, the plugins, the config.
    done = _without({"starlette", "uvicorn", "watchfiles", "pytest", "jsonschema"},
                    "check", "-c", "bots.yaml")
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout


@pytest.mark.parametrize(("argv", "needs"), [
    (["dev", "-c", "bots.yaml"], "botkit dev needs uvicorn"),
    (["run", "--reload", "-c", "bots.yaml"], "--reload needs watchfiles"),
])
def test_a_command_that_needs_an_extra_names_it(argv: list[str], needs: str) -> None:
    done = _without({"uvicorn", "watchfiles"}, *argv)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert needs in done.stderr
    assert "pip install 'botkit[hub]'" in done.stderr


def test_with_the_extras_the_message_does_not_appear(
        capsys: pytest.CaptureFixture[str]) -> None:
    # A bad --grace is reported after the extras check passed: the extras are there.
    assert main(["dev", "--grace", "forever"]) == 2
    assert "botkit[hub]" not in capsys.readouterr().err
