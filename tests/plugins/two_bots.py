"""A test plugin with two Bots and neither named ``bot``: which one to run is ambiguous."""

from __future__ import annotations

from botkit import Bot

first = Bot("first")
second = Bot("second")
