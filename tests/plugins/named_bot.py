"""A test plugin with two Bots, one of them named ``bot``: that one runs."""

from __future__ import annotations

from botkit import Bot

helper = Bot("helper")
bot = Bot("named")
