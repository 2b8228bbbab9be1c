"""Per-bot state: ``ctx.state`` backends (SQLite by default, memory for tests)."""

from __future__ import annotations

from botkit.state.store import (
    MAX_KEY_LENGTH,
    BotState,
    JsonValue,
    MemoryStateStore,
    SQLiteStateStore,
    StateStore,
    open_state_store,
)

__all__ = [
    "MAX_KEY_LENGTH",
    "BotState",
    "JsonValue",
    "MemoryStateStore",
    "SQLiteStateStore",
    "StateStore",
    "open_state_store",
]
