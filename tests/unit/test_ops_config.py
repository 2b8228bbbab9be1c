"""The ``ops:`` section and the --ops-* options: off by default, bounded, located errors, and a
port that is taken refused before any bot starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from botkit.config import parse_config
from botkit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
BASE = """\
xshathra:
  project_id: proj_a
  realtime_url: ws://127.0.0.1:1/ws
  api_url: http://127.0.0.1:1/api
  server_api_key: kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk
bots:
  - name: flaky
    plugin: tests.plugins.flaky
    user_id: bot_flaky
    rooms: [lobby]
"""


def test_off_unless_asked_for_and_defaults_when_empty() -> None:
    assert parse_config(BASE, source="bots.yaml").ops is None
    ops = parse_config(BASE + "ops: {}\n", source="bots.yaml").ops
    assert ops is not None
    assert (ops.host, ops.port) == ("127.0.0.1", 9180)
    ipv6 = parse_config(BASE + "ops: {host: '::1', port: 9}\n", source="bots.yaml").ops
    assert ipv6 is not None
    assert (ipv6.host, ipv6.port) == ("::1", 9)


@pytest.mark.parametrize(("section", "expected"), [
    ("ops: {port: 70000}", "bots.yaml:11: ops.port: must be at most 65535"),
    ("ops: {port: 0}", "bots.yaml:11: ops.port: must be at least 1"),
    ("ops: {prot: 9180}", "bots.yaml:11: ops.prot: unknown key 'prot'; did you mean 'port'?"),
    ("ops: {host: 'http://0.0.0.0'}", "bots.yaml:11: ops.host: expected a host name or IP"),
    ("ops: {host: '127.0.0.1:9180'}", "bots.yaml:11: ops.host: expected a host name or IP"),
])
def test_mistakes_are_located(section: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + section + "\n", source="bots.yaml")
    assert str(caught.value).startswith(expected), str(caught.value)


def _botkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "botkit", *args], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=60, check=False)


def test_a_taken_port_is_a_setup_error(tmp_path: Path) -> None:
    config = tmp_path / "bots.yaml"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config.write_text(BASE + f"ops: {{port: {port}}}\n")
        result = _botkit("run", "-c", str(config))
    assert result.returncode == 2, result.stderr
    assert f"the ops endpoint cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_options_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "bots.yaml"
    config.write_text(BASE)
    port = _botkit("run", "-c", str(config), "--ops-port", "99999")
    assert port.returncode == 2
    assert "is not a TCP port" in port.stderr
    host = _botkit("run", "-c", str(config), "--ops-host", "http://x")
    assert host.returncode == 2
    assert "--ops-host: 'http://x' is not a host name or IP address" in host.stderr
