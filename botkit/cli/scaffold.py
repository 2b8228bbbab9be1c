"""``botkit new NAME``: a new bot and its test, ready to edit, in the project's folders.

It writes ``bots/NAME.py`` (one command and one event handler) and ``tests/bots/test_NAME.py``
(a passing harness test), never over an existing file, and prints the bots.yaml entry to add:
editing the user's bots.yaml would lose their comments and layout.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from botkit.errors import ConfigError

__all__ = ["bots_yaml_entry", "check_bot_name", "new_bot"]

# A module name (it is imported as bots.NAME) that is also a valid bot name of bots.yaml.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")

_BOT = '''\
"""{name}: answers /hello and welcomes who joins. Made by `botkit new {name}`; make it yours."""

from __future__ import annotations

from pydantic import BaseModel

from botkit import Bot, Context, UserJoined


class Settings(BaseModel):
    """The bot's ``settings:`` in bots.yaml."""

    welcome: str = "Welcome! Say /hello to meet {name}."


bot = Bot("{name}", settings=Settings)


@bot.command("hello", help="say hello")
async def hello(ctx: Context) -> None:
    await ctx.reply(f"Hello, {{ctx.sender}}!")


@bot.on("user.joined")
async def welcome(ctx: Context, event: UserJoined) -> None:
    # event.user_id is who joined; repeat it in the room only if it looks like an id (see
    # docs/security.md): a user id is whatever the token's issuer put there.
    settings: Settings = ctx.settings
    await ctx.reply(settings.welcome)
'''

_TEST = '''\
"""bots.{name}: made by `botkit new {name}`. Run with: python -m pytest tests/bots/"""

from __future__ import annotations

import pytest

from botkit.testing.pytest_plugin import HarnessFactory

# Explicit, so the tests run whether pytest-asyncio is in auto or strict mode.
pytestmark = pytest.mark.asyncio


async def test_hello_answers_the_sender(bot_harness: HarnessFactory) -> None:
    h = await bot_harness("bots.{name}", user="alice")
    assert (await h.say("/hello")).text == "Hello, alice!"


async def test_welcomes_who_joins(bot_harness: HarnessFactory) -> None:
    h = await bot_harness("bots.{name}", settings={{"welcome": "Hi there!"}})
    assert (await h.join("bob")).texts == ["Hi there!"]
'''

_PACKAGE = '"""The bots of this project, one module per bot (bots.yaml names them)."""\n'


def check_bot_name(name: str) -> str:
    """``name`` if it can be both a module (``bots.NAME``) and a bot name; else ConfigError."""
    if not _NAME.fullmatch(name) or keyword.iskeyword(name):
        raise ConfigError(f"{name!r} is not a usable bot name: write a Python identifier that "
                          "starts with a letter and has only ASCII letters, digits and '_' "
                          "(at most 64 characters), e.g. dice_roller")
    return name


def new_bot(name: str, project: Path) -> list[Path]:
    """Write the bot and its test under ``project``; the files written. Nothing is written if
    either file exists (ConfigError)."""
    check_bot_name(name)
    bot_file = project / "bots" / f"{name}.py"
    test_file = project / "tests" / "bots" / f"test_{name}.py"
    for path in (bot_file, test_file):
        if path.exists():
            raise ConfigError(f"{path} already exists; not overwriting it (choose another name "
                              "or remove the file)")
    written: list[Path] = []
    package = bot_file.parent / "__init__.py"
    if not bot_file.parent.exists():
        bot_file.parent.mkdir(parents=True)
        package.write_text(_PACKAGE, encoding="utf-8")
        written.append(package)
    test_file.parent.mkdir(parents=True, exist_ok=True)
    for path, template in ((bot_file, _BOT), (test_file, _TEST)):
        with path.open("x", encoding="utf-8") as file:  # "x": never over a file made meanwhile
            file.write(template.format(name=name))
        written.append(path)
    return written


def bots_yaml_entry(name: str) -> str:
    """The item to add under ``bots:`` in bots.yaml, indented as in the shipped file."""
    return (f"  - name: {name}\n"
            f"    plugin: bots.{name}\n"
            f"    user_id: bot_{name}\n"
            f"    rooms: [lobby]\n")
