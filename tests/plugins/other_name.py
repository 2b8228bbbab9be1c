"""A test plugin whose only Bot is not named ``bot``."""

from __future__ import annotations

from botkit import Bot

scorekeeper = Bot("scorekeeper")
