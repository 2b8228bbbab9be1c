"""The runtime: bots loaded from bots.yaml, connected, subscribed, and their envelopes handled.

Modules, one concept each::

    core        BotCore: validation, routing and handler calls (shared with botkit.testing)
    runner      BotRunner: one bot's connection, lanes and subscriptions
    supervisor  Runtime: every bot of a bots.yaml, start and shutdown in a fixed order, each
                bot's failures its own (BotStatus)
    trust       which publications a bot takes: server-published, or a member's own words
    lanes       one ordered, bounded lane per (bot, room)
    deadlines   one shared timer for every handler's deadline
    presence    user.joined / user.left made from presence, once per user
    plugins     importing a bot's plugin
"""

from __future__ import annotations

from botkit.runtime.supervisor import (
    BotPhase,
    BotRunner,
    BotStats,
    BotStatus,
    LoadedBot,
    Runtime,
    load_bot,
    load_bots,
)

__all__ = [
    "BotPhase",
    "BotRunner",
    "BotStats",
    "BotStatus",
    "LoadedBot",
    "Runtime",
    "load_bot",
    "load_bots",
]
