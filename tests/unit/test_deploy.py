"""The deployment files: deploy/botkit.service (checked by systemd-analyze where it exists) and
the Dockerfile (checked statically: no Docker engine here)."""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from botkit.cli.main import _parser
from botkit.config import parse_duration

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "botkit.service"
DOCKERFILE = ROOT / "Dockerfile"
INSTALLED_AT = "/opt/botkit/bin/botkit"
OPS_OPTIONS = ("--ops-host", "--ops-port")


def _run_options() -> set[str]:
    for action in _parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices["run"]._option_string_actions)
    raise AssertionError("botkit has no subcommands")


def _botkit_args(argv: list[str]) -> argparse.Namespace:
    """``argv`` (after the program name) as botkit's parser reads it; fails on a bad option."""
    assert set(OPS_OPTIONS) <= _run_options()
    return _parser().parse_args(argv)


def _unit() -> dict[str, list[str]]:
    """Key -> values of the unit file (a key may repeat)."""
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # verify insists that ExecStart's program exists: here botkit isn't in /opt.
    unit = tmp_path / "botkit.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace(INSTALLED_AT, sys.executable),
                    encoding="utf-8")
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60, check=False)
    # It also exits 0 on unknown keys and bad values, which it only reports: none may be.
    complaints = [line for line in (done.stdout + done.stderr).splitlines()
                  if "botkit.service" in line]
    assert done.returncode == 0, done.stderr
    assert complaints == []


def test_the_unit_restarts_on_failure_and_stops_within_its_timeout() -> None:
    unit = _unit()
    assert unit["Type"] in (["simple"], ["notify"])
    assert unit["Restart"] == ["on-failure"]
    assert unit["RestartPreventExitStatus"] == ["2"]  # a config error is not retried forever
    [exec_start] = unit["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0] == INSTALLED_AT
    args = _botkit_args(argv[1:])
    assert args.command == "run"
    assert parse_duration(unit["TimeoutStopSec"][0]) > parse_duration(args.grace)


def test_the_unit_runs_unprivileged_with_secrets_from_files() -> None:
    unit = _unit()
    assert unit.get("DynamicUser") == ["yes"] or unit.get("User", ["root"])[0] not in ("root",
                                                                                          "0")
    assert "LoadCredential" in unit or "EnvironmentFile" in unit
    assert "XSHATHRA_SERVER_API_KEY" not in "".join(unit.get("Environment", []))


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        instruction, _, arguments = line.partition(" ")
        instructions.append((instruction.upper(), arguments.strip()))
    assert pending == "", "the Dockerfile ends in a continuation"
    return instructions


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def test_the_dockerfile_parses_into_known_instructions() -> None:
    known = {"FROM", "WORKDIR", "COPY", "RUN", "ENV", "USER", "EXPOSE", "HEALTHCHECK",
             "STOPSIGNAL", "ENTRYPOINT", "CMD", "VOLUME", "ARG", "LABEL"}
    instructions = _dockerfile()
    assert instructions[0][0] == "FROM"
    assert {name for name, _ in instructions} <= known
    for name, arguments in instructions:
        if name == "COPY" and not arguments.startswith("--from"):
            *sources, _ = arguments.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file in the project"


def test_the_image_is_small_and_runs_as_a_user() -> None:
    stage = _final_stage()
    assert stage[0][1].endswith("-slim")
    users = [arguments for name, arguments in stage if name == "USER"]
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    last_user = max(i for i, (name, _) in enumerate(stage) if name == "USER")
    entry = max(i for i, (name, _) in enumerate(stage) if name in ("ENTRYPOINT", "CMD"))
    assert last_user < entry
    # A plain install: the production image leaves out the hub and the test tools.
    runs = " ".join(arguments for name, arguments in _dockerfile() if name == "RUN")
    assert "pip install --no-cache-dir ." in runs
    assert "[" not in runs.split("pip install", 1)[1].split("&&")[0]


def test_the_healthcheck_asks_the_ops_endpoint_the_bots_serve() -> None:
    stage = dict(_final_stage()[1:])
    entrypoint = json.loads(stage["ENTRYPOINT"])
    assert entrypoint[0] == "botkit"
    args = _botkit_args(entrypoint[1:])
    assert args.command == "run"
    port = entrypoint[entrypoint.index("--ops-port") + 1]
    healthcheck = stage["HEALTHCHECK"]
    assert " CMD " in f" {healthcheck} "
    assert f"http://127.0.0.1:{port}/healthz" in healthcheck
    assert port in stage["EXPOSE"].split()
    assert stage["STOPSIGNAL"] == "SIGTERM"
