"""Finding a bot's ``Bot`` from the ``plugin`` named in ``bots.yaml``: a module path such as
``bots.welcome``, or the name of an installed entry point in the group ``botkit.bots``."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import traceback
from pathlib import Path
from types import ModuleType

from botkit.bot import Bot
from botkit.config import BotConfig, BotsConfig
from botkit.errors import PluginError, PluginLoadError

__all__ = ["ENTRY_POINT_GROUP", "load_configured_plugin", "load_plugin"]

ENTRY_POINT_GROUP = "botkit.bots"


def _bot_of(module: ModuleType | object, plugin: str) -> Bot:
    if isinstance(module, Bot):
        return module
    named = getattr(module, "bot", None)
    if isinstance(named, Bot):
        return named
    if not isinstance(module, ModuleType):
        # An entry point may name any object; only a Bot or a module holding one will do.
        raise PluginError(f"plugin {plugin!r} is a {type(module).__name__}, not a Bot or a "
                          "module defining one")
    found = [value for value in vars(module).values() if isinstance(value, Bot)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise PluginError(f"plugin {plugin!r} defines no Bot; add `bot = Bot(\"name\")` at "
                          "module level")
    raise PluginError(f"plugin {plugin!r} defines {len(found)} Bots; name the one to run `bot`")


def _entry_point(plugin: str) -> importlib.metadata.EntryPoint | None:
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == plugin:
            return entry
    return None


def load_plugin(plugin: str, *, search_path: Path | None = None) -> Bot:
    """Import ``plugin`` and return its Bot. ``search_path`` (the folder of bots.yaml) is put on
    ``sys.path`` first so that ``bots.welcome`` resolves next to the config."""
    if search_path is not None and str(search_path) not in sys.path:
        sys.path.insert(0, str(search_path))
    entry = _entry_point(plugin)
    if entry is not None:
        try:
            loaded = entry.load()
        except SystemExit as exc:
            raise PluginError(f"entry point {plugin!r} ({entry.value}) failed to load: "
                              f"{_exited(exc)}") from None
        except Exception as exc:
            raise PluginError(f"entry point {plugin!r} ({entry.value}) failed to load: "
                              f"{exc}{_raised_at(exc)}") from exc
        return _bot_of(loaded, plugin)
    try:
        module = importlib.import_module(plugin)
    except ModuleNotFoundError as exc:
        # Missing is the plugin itself or a package on its path; a missing module it imports
        # ("requests" for plugin "requests_bot") is a failed import, not a missing plugin.
        if exc.name and (plugin == exc.name or plugin.startswith(f"{exc.name}.")):
            raise PluginError(
                f"plugin {plugin!r} not found: no module of that name and no entry point in "
                f"group {ENTRY_POINT_GROUP!r}") from exc
        raise PluginError(f"plugin {plugin!r} failed to import: {exc}"
                          f"{_raised_at(exc)}") from exc
    except PluginError:
        raise
    except SystemExit as exc:
        # Not an Exception: left alone it ended `botkit check` with the plugin's exit code
        # and no word of why.
        raise PluginError(f"plugin {plugin!r} failed to import: {_exited(exc)}") from None
    except Exception as exc:
        raise PluginError(f"plugin {plugin!r} failed to import: {exc!r}"
                          f"{_raised_at(exc)}") from exc
    return _bot_of(module, plugin)


def load_configured_plugin(config: BotsConfig, bot_config: BotConfig, *,
                           search_path: Path | None = None) -> Bot:
    """:func:`load_plugin` for a bot of ``config``; a failure is a :class:`PluginLoadError`
    located at the bot's ``plugin:`` line (``bots.yaml:9: bots[0].plugin: ...``), when the
    config was read from a file. A plugin scheduling jobs into rooms the bot is not in is
    refused at its ``rooms:``."""
    assert bot_config.plugin is not None
    try:
        bot = load_plugin(bot_config.plugin, search_path=search_path)
    except PluginError as exc:
        raise _located(config, bot_config, "plugin", exc) from exc
    own = {room.id for room in bot_config.rooms}
    for spec in bot.schedules:
        # Like bots.yaml's schedules: a job posts as this bot, so only where it is a member.
        strays = [room for room in spec.rooms if room not in own]
        if strays:
            raise _located(config, bot_config, "rooms", PluginError(
                f"plugin {bot_config.plugin!r} schedules {spec.key} in room {strays[0]!r}, "
                "which is not one of this bot's rooms; add it here or change the plugin"))
    return bot


def _located(config: BotsConfig, bot_config: BotConfig, key: str,
             error: PluginError) -> PluginError:
    """``error`` located at ``bots[i].<key>`` of the file, if the config came from one."""
    index = next((i for i, each in enumerate(config.bots)
                  if each is bot_config or each.name == bot_config.name), None)
    line = config.source.line_of(("bots", index, key)) if index is not None else None
    if line is None:
        return error  # a config built in code: there is no line to point at
    return PluginLoadError(str(error), path=config.source.path, line=line,
                           field=f"bots[{index}].{key}")


def _exited(exc: SystemExit) -> str:
    return f"it called sys.exit({exc.code!r}) while being imported{_raised_at(exc)}"


def _raised_at(exc: BaseException) -> str:
    """Where the plugin's code raised ``exc``: the operator's first place to look."""
    if isinstance(exc, SyntaxError):
        return ""  # its message already names the file and the line
    frames = traceback.extract_tb(exc.__traceback__)
    own = [frame for frame in frames if not frame.filename.startswith("<frozen ")]
    return f" (at {own[-1].filename}:{own[-1].lineno})" if own else ""
