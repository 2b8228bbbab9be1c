"""`botkit new NAME`: a bot and its passing test, never over a file, and its bots.yaml entry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from botkit.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def _botkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "botkit", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=60, check=False)


def test_the_new_bot_passes_its_own_test_and_botkit_check(tmp_path: Path) -> None:
    made = _botkit("new", "demo", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "bots" / "demo.py").is_file()
    assert (tmp_path / "tests" / "bots" / "test_demo.py").is_file()
    entry = made.stdout.split("under bots:\n\n", 1)[1].split("\n\n", 1)[0]
    assert entry.splitlines()[:3] == ["  - name: demo", "    plugin: bots.demo",
                                      "    user_id: bot_demo"]

    # The user's project, not ours: no pytest configuration, the bot imported from its folder.
    tested = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/bots/test_demo.py"],
        capture_output=True, text=True, cwd=tmp_path, timeout=100, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "2 passed" in tested.stdout

    # The printed entry, pasted into a bots.yaml, loads and routes.
    (tmp_path / "bots.yaml").write_text(
        "xshathra:\n  project_id: proj_a\n  realtime_url: ws://127.0.0.1:1/ws\n"
        "  api_url: http://127.0.0.1:1/api\n  server_api_key: ${KEY:-k}\nbots:\n" + entry + "\n",
        encoding="utf-8")
    checked = _botkit("check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "/hello → hello" in checked.stdout
    assert "on user.joined → welcome" in checked.stdout


def test_it_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bot_file = tmp_path / "bots" / "demo.py"
    bot_file.parent.mkdir()
    bot_file.write_text("# mine\n")
    assert main(["new", "demo", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "already exists" in err
    assert bot_file.read_text() == "# mine\n"
    assert not (tmp_path / "tests").exists()  # nothing half-written


def test_it_refuses_to_overwrite_the_test_either(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    test_file = tmp_path / "tests" / "bots" / "test_demo.py"
    test_file.parent.mkdir(parents=True)
    test_file.write_text("# mine\n")
    assert main(["new", "demo", "--dir", str(tmp_path)]) == 2
    assert "test_demo.py already exists" in capsys.readouterr().err
    assert not (tmp_path / "bots").exists()
    assert test_file.read_text() == "# mine\n"


@pytest.mark.parametrize("name", ["9lives", "my-bot", "class", "_hidden", "bots.x", "é", "",
                                  "a" * 65])
def test_the_name_must_be_a_module_and_a_bot_name(tmp_path: Path, name: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", name, "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "is not a usable bot name" in err
    assert list(tmp_path.iterdir()) == []


def test_an_existing_bots_package_is_kept(tmp_path: Path) -> None:
    (tmp_path / "bots").mkdir()
    assert main(["new", "dice_roller", "--dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in (tmp_path / "bots").iterdir()) == ["dice_roller.py"]
