"""Finding a bot's ``Bot`` from the ``plugin`` named in ``bots.yaml``: a module path such as
``bots.welcome``, or the name of an installed entry point in the group ``botkit.bots``."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from pathlib import Path
from types import ModuleType

from botkit.bot import Bot
from botkit.errors import PluginError

__all__ = ["ENTRY_POINT_GROUP", "load_plugin"]

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
        except Exception as exc:
            raise PluginError(f"entry point {plugin!r} ({entry.value}) failed to load: "
                              f"{exc}") from exc
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
        raise PluginError(f"plugin {plugin!r} failed to import: {exc}") from exc
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(f"plugin {plugin!r} failed to import: {exc!r}") from exc
    return _bot_of(module, plugin)
