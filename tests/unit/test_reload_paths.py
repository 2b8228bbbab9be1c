"""What `--reload` watches and what it runs again (the restart itself: test_reload.py)."""

from __future__ import annotations

from pathlib import Path

from botkit.cli.reload import child_argv, watched_paths

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """\
xshathra:
  project_id: proj_a
  realtime_url: ws://127.0.0.1:1/ws
  api_url: http://127.0.0.1:1/api
  server_api_key: ${KEY}
bots:
  - {name: local, plugin: mine, user_id: bot_local}
  - {name: elsewhere, plugin: tests.plugins.greeter, user_id: bot_elsewhere}
  - {name: installed, plugin: pydantic, user_id: bot_installed}
  - {name: codeless, user_id: bot_codeless}
"""


def test_it_watches_the_config_folder_and_plugins_found_elsewhere(tmp_path: Path) -> None:
    config = tmp_path / "bots.yaml"
    config.write_text(CONFIG)
    (tmp_path / "mine.py").write_text("")
    # Not the installed package (pydantic): only code the author may be editing.
    assert watched_paths(config, {"KEY": "k"}) == [tmp_path.resolve(),
                                                   ROOT / "tests" / "plugins"]


def test_a_broken_config_still_has_its_folder_watched(tmp_path: Path) -> None:
    config = tmp_path / "bots.yaml"
    config.write_text(CONFIG)
    assert watched_paths(config, {}) == [tmp_path.resolve()]  # ${KEY} is not set


def test_the_child_runs_the_same_command_without_reload() -> None:
    assert child_argv(["run", "--reload", "-c", "x.yaml", "--grace", "2s"]) == [
        "run", "-c", "x.yaml", "--grace", "2s"]
    assert child_argv(["dev", "--rel", "--port", "3001"]) == ["dev", "--port", "3001"]
    assert child_argv(["run", "--r", "--"]) == ["run", "--"]  # argparse reads --r as --reload
