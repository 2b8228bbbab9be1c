"""Finding a bot's ``Bot`` from the ``plugin`` of bots.yaml: module paths and entry points."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from botkit import Bot, PluginError
from botkit.runtime.plugins import ENTRY_POINT_GROUP, load_plugin
from tests.plugins import chatty, named_bot, other_name


@pytest.fixture
def clean_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what a test adds to sys.path and sys.modules."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if not name.startswith("tests.plugins."):
            del sys.modules[name]


def test_a_module_path() -> None:
    assert load_plugin("tests.plugins.chatty") is chatty.bot


def test_the_bot_named_bot_wins_over_others() -> None:
    bot = load_plugin("tests.plugins.named_bot")
    assert bot is named_bot.bot
    assert bot.name == "named"


def test_a_single_bot_under_another_name() -> None:
    assert load_plugin("tests.plugins.other_name") is other_name.scorekeeper


def test_a_module_without_a_bot() -> None:
    with pytest.raises(PluginError, match=r"plugin 'tests.plugins.no_bot' defines no Bot; "
                                          r"add `bot = Bot\(\"name\"\)`"):
        load_plugin("tests.plugins.no_bot")


def test_a_module_with_two_bots() -> None:
    with pytest.raises(PluginError, match=r"plugin 'tests.plugins.two_bots' defines 2 Bots; "
                                          "name the one to run `bot`"):
        load_plugin("tests.plugins.two_bots")


@pytest.mark.parametrize("plugin", ["tests.plugins.nosuch", "nosuch_botkit_plugin",
                                    "nosuch_botkit_pkg.welcome"])
def test_a_missing_module_names_the_entry_point_group(plugin: str) -> None:
    with pytest.raises(PluginError) as caught:
        load_plugin(plugin)
    message = str(caught.value)
    assert f"plugin {plugin!r} not found" in message
    assert f"no entry point in group {ENTRY_POINT_GROUP!r}" in message
    assert ENTRY_POINT_GROUP == "botkit.bots"
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


def test_a_missing_dependency_is_not_a_missing_plugin() -> None:
    # The plugin exists; what it imports does not. "tests.plugins.needs_dep" starts with the
    # missing "tests.plugins.needs", which must not make the plugin itself look missing.
    with pytest.raises(PluginError) as caught:
        load_plugin("tests.plugins.needs_dep")
    message = str(caught.value)
    assert "plugin 'tests.plugins.needs_dep' failed to import" in message
    assert "tests.plugins.needs'" in message
    assert "not found" not in message.split(":", 1)[0]


def test_a_plugin_whose_import_raises() -> None:
    with pytest.raises(PluginError, match=r"plugin 'tests.plugins.raises_on_import' failed to "
                                          r"import: RuntimeError\('plugin exploded on import'\)"
                       ) as caught:
        load_plugin("tests.plugins.raises_on_import")
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_a_handler_with_a_bad_signature_fails_at_import() -> None:
    with pytest.raises(PluginError, match=r"bot bad_signature: command 'add' handler "
                                          r"add_numbers: parameter 'numbers' has type "
                                          r"list\[int\]"):
        load_plugin("tests.plugins.bad_signature")


def test_search_path_finds_plugins_next_to_bots_yaml(tmp_path: Path,
                                                     clean_imports: None) -> None:
    package = tmp_path / "botkit_test_local_bots"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "hello.py").write_text(textwrap.dedent("""\
        from botkit import Bot
        bot = Bot("hello_local")
        """))
    with pytest.raises(PluginError, match="not found"):
        load_plugin("botkit_test_local_bots.hello")
    bot = load_plugin("botkit_test_local_bots.hello", search_path=tmp_path)
    assert isinstance(bot, Bot)
    assert bot.name == "hello_local"
    assert sys.path[0] == str(tmp_path)
    load_plugin("botkit_test_local_bots.hello", search_path=tmp_path)
    assert sys.path.count(str(tmp_path)) == 1


def test_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      clean_imports: None) -> None:
    dist = tmp_path / "botkit_test_plugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: botkit-test-plugins\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(f"""\
        [{ENTRY_POINT_GROUP}]
        ep_chatty = tests.plugins.chatty:bot
        ep_module = tests.plugins.other_name
        ep_broken = tests.plugins.nosuch:bot
        ep_not_a_bot = tests.plugins.no_bot:greeting
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_plugin("ep_chatty") is chatty.bot
    assert load_plugin("ep_module") is other_name.scorekeeper
    with pytest.raises(PluginError, match=r"entry point 'ep_broken' "
                                          r"\(tests.plugins.nosuch:bot\) failed to load"):
        load_plugin("ep_broken")
    with pytest.raises(PluginError, match="plugin 'ep_not_a_bot' is a str, not a Bot or a "
                                          "module defining one"):
        load_plugin("ep_not_a_bot")
