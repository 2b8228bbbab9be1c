"""Issue 16 #9/#10: operators' mistakes through the real ``botkit`` command: one line on
stderr, located where bots.yaml allows, exit 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEADER = """\
xshathra:
  project_id: proj_a
  realtime_url: ws://127.0.0.1:1/ws
  api_url: http://127.0.0.1:1/api
  server_api_key: k3y-k3y-k3y-k3y-k3y-k3y-k3y-k3y-k3y
bots:
"""


def botkit(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "botkit", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=60, check=False)


def assert_one_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert result.stderr == f"botkit: {expected}\n" or (
        result.stderr.startswith(f"botkit: {expected}") and result.stderr.count("\n") == 1
    ), result.stderr


def config_with_plugin(tmp_path: Path, body: str) -> Path:
    package = tmp_path / "botkit_cli_test_bots"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "broken.py").write_text(body)
    config = tmp_path / "bots.yaml"
    config.write_text(HEADER + "  - name: fine\n    user_id: bot_fine\n"
                               "  - name: broken\n    user_id: bot_broken\n"
                               "    plugin: botkit_cli_test_bots.broken\n")
    return config


@pytest.mark.parametrize("args", [
    ("token", "--user", "user_a", "--ttl", "banana"),
    ("run", "--grace", "banana"),
    ("dev", "--grace", "banana"),
])
def test_a_bad_cli_duration_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    config = tmp_path / "bots.yaml"
    config.write_text(HEADER + "  - {name: a, user_id: bot_a}\n")
    option = args[-2]
    result = botkit(*args, "-c", str(config))
    assert_one_line(result, f"{option}: invalid duration 'banana'; write a number of seconds "
                            "(30) or a number with a unit: 500ms, 30s, 15m, 1h, 1h30m")


@pytest.mark.parametrize(("args", "expected"), [
    (("token", "--user", "user_a", "--ttl", "1000h"), "--ttl: must be between 1s and 24h"),
    (("run", "--grace", "2h"), "--grace: must be between 0s and 1h"),
])
def test_cli_durations_have_bounds(tmp_path: Path, args: tuple[str, ...],
                                   expected: str) -> None:
    config = tmp_path / "bots.yaml"
    config.write_text(HEADER + "  - {name: a, user_id: bot_a}\n")
    assert_one_line(botkit(*args, "-c", str(config)), expected)


def test_a_plugin_calling_sys_exit_on_import_is_located(tmp_path: Path) -> None:
    config = config_with_plugin(tmp_path, "import sys\n\nsys.exit(3)\n")
    result = botkit("check", "-c", str(config))
    assert_one_line(result, f"{config}:11: bots[1].plugin: plugin "
                            "'botkit_cli_test_bots.broken' failed to import: it called "
                            f"sys.exit(3) while being imported (at "
                            f"{tmp_path / 'botkit_cli_test_bots' / 'broken.py'}:3)")


def test_a_plugin_raising_on_import_is_located(tmp_path: Path) -> None:
    config = config_with_plugin(tmp_path, "X = 1\nraise RuntimeError('no database')\n")
    result = botkit("check", "-c", str(config))
    assert_one_line(result, f"{config}:11: bots[1].plugin: plugin "
                            "'botkit_cli_test_bots.broken' failed to import: "
                            "RuntimeError('no database') (at "
                            f"{tmp_path / 'botkit_cli_test_bots' / 'broken.py'}:2)")


def test_run_reports_a_broken_plugin_like_check(tmp_path: Path) -> None:
    config = config_with_plugin(tmp_path, "raise SystemExit('bye')\n")
    result = botkit("run", "-c", str(config))
    assert_one_line(result, f"{config}:11: bots[1].plugin: plugin "
                            "'botkit_cli_test_bots.broken' failed to import: it called "
                            "sys.exit('bye') while being imported")


def test_check_refuses_an_alias_bomb_quickly(tmp_path: Path) -> None:
    config = tmp_path / "bots.yaml"
    laughs = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    laughs += [f"lol{n}: &lol{n} [{', '.join([f'*lol{n - 1}'] * 9)}]" for n in range(1, 10)]
    config.write_text("\n".join(laughs) + "\n")
    result = botkit("check", "-c", str(config))
    assert_one_line(result, f"{config}:6: lol5: the document expands")
    assert "expands to more than 100000 values through its aliases" in result.stderr


def test_a_plugin_scheduling_into_a_room_the_bot_is_not_in_is_located(tmp_path: Path) -> None:
    config = config_with_plugin(tmp_path, (
        "from botkit import Bot\n\nbot = Bot('broken')\n\n\n"
        "@bot.every(minutes=5, rooms=['lobby', 'vip'])\nasync def nag(ctx):\n    pass\n"))
    config.write_text(config.read_text() + "    rooms: [lobby]\n")
    result = botkit("check", "-c", str(config))
    assert_one_line(result, f"{config}:12: bots[1].rooms: plugin 'botkit_cli_test_bots.broken' "
                            "schedules nag in room 'vip', which is not one of this bot's "
                            "rooms; add it here or change the plugin")


def test_status_without_a_cluster_section_says_why_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bots.yaml"
    config.write_text(HEADER + "  - {name: echo, user_id: bot_echo, rooms: [lobby]}\n")
    result = botkit("status", "-c", str(config))
    assert_one_line(result, "botkit status reads the replicas from Redis: bots.yaml has no "
                            "cluster: section")


def test_status_with_redis_unreachable_names_the_url_without_its_password(
        tmp_path: Path) -> None:
    config = tmp_path / "bots.yaml"
    config.write_text(HEADER.replace("bots:\n", "cluster: {redis_url: "
                                                "'redis://:s3cret@127.0.0.1:1/0'}\nbots:\n")
                      + "  - {name: echo, user_id: bot_echo, rooms: [lobby]}\n")
    result = botkit("status", "-c", str(config))
    assert result.returncode == 1, result.stderr
    assert "cannot read the cluster from redis://" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
