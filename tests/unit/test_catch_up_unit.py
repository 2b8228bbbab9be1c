"""Catch-up after a restart, without a server: the age policy and ``ctx.replayed``/``ctx.age``
through the harness, the ``catch_up:`` section of bots.yaml, the stored positions on both state
backends, and a corrupt or read-only state file at start (one line, exit 2)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from botkit import Bot, Context, Gap
from botkit.config import parse_config
from botkit.errors import ConfigError, PluginError, StateFileError
from botkit.protocol.types import ClientInfo, StreamPosition
from botkit.runtime.positions import NAMESPACE, Positions
from botkit.runtime.presence import RoomPresence
from botkit.state import MemoryStateStore, SQLiteStateStore
from botkit.testing import BotHarness

seen: list[tuple[bool, timedelta]] = []
bot = Bot("replays")


@bot.command("roll")
async def roll(ctx: Context) -> None:
    seen.append((ctx.replayed, ctx.age))
    await ctx.reply("rolled")


@pytest.fixture(autouse=True)
def _clear() -> None:
    seen.clear()


async def test_live_envelopes_are_not_replayed_and_have_an_age() -> None:
    async with BotHarness(bot) as h:
        await h.advance(3)
        assert (await h.say("/roll")).texts == ["rolled"]
    assert seen == [(False, timedelta(0))]


async def test_a_replayed_envelope_within_max_age_is_handled_and_says_so() -> None:
    async with BotHarness(bot, catch_up={"max_age": "10m"}) as h:
        sent = h.now - timedelta(minutes=9)
        assert (await h.say("/roll", replayed=True, sent_at=sent)).texts == ["rolled"]
        assert seen == [(True, timedelta(minutes=9))]
        assert h.stats.skipped_old == 0


async def test_a_replayed_envelope_older_than_max_age_is_skipped_and_counted() -> None:
    async with BotHarness(bot) as h:  # the default max_age: 10 minutes
        replies = await h.say("/roll", replayed=True, sent_at=h.now - timedelta(minutes=11))
        assert replies.texts == []
        assert h.stats.skipped_old == 1
        # A live envelope is never skipped for its age (a slow clock is not a replay).
        replies = await h.say("/roll", sent_at=h.now - timedelta(hours=3))
        assert replies.texts == ["rolled"]
    assert seen == [(False, timedelta(hours=3))]


async def test_a_long_max_age_keeps_old_announcements() -> None:
    async with BotHarness(bot, catch_up={"max_age": "1h"}) as h:
        replies = await h.say("/roll", replayed=True, sent_at=h.now - timedelta(minutes=59))
        assert replies.texts == ["rolled"]
        assert h.stats.skipped_old == 0


def test_on_gap_hooks_take_the_context_and_the_gap() -> None:
    b = Bot("gaps")

    @b.on_gap
    async def gap(ctx: Context, gap: Gap) -> None:
        pass

    assert b.gap_hooks == [gap]
    with pytest.raises(PluginError, match=r"must take \(ctx, gap\)"):
        @b.on_gap
        async def wrong(ctx: Context) -> None:
            pass


async def test_on_gap_hooks_run_in_the_room_of_the_gap() -> None:
    b = Bot("gaps")
    got: list[tuple[str | None, Gap]] = []

    @b.on_gap
    async def gap(ctx: Context, gap: Gap) -> None:
        got.append((ctx.room, gap))
        raise RuntimeError("a hook's bug is logged, never raised")

    async with BotHarness(b, rooms=["lobby", "side"]) as h:
        lost = Gap("side", StreamPosition(4, "e1"), "new epoch", StreamPosition(2, "e2"))
        await h.core.run_gap_hooks(lost)
    assert got == [("side", lost)]


# -- bots.yaml --------------------------------------------------------------------------------

HEAD = textwrap.dedent("""\
    xshathra: {project_id: p, realtime_url: "ws://h/", api_url: "http://h/", server_api_key: k}
    """)


def test_catch_up_defaults_and_per_bot_overrides_key_by_key() -> None:
    from botkit.config import resolve_catch_up
    config = parse_config(HEAD + textwrap.dedent("""\
        catch_up: {max_age: 1h, enabled: false}
        bots:
          - {name: a, user_id: bot_a}
          - {name: b, user_id: bot_b, catch_up: {enabled: true}}
        """), source="bots.yaml")
    a, b = (resolve_catch_up(config.catch_up, entry.catch_up) for entry in config.bots)
    assert (a.enabled, a.max_age) == (False, 3600.0)
    assert (b.enabled, b.max_age) == (True, 3600.0)
    default = parse_config(HEAD + "bots: [{name: a, user_id: bot_a}]\n", source="bots.yaml")
    assert (default.catch_up.enabled, default.catch_up.max_age) == (True, 600.0)


@pytest.mark.parametrize(("value", "message"), [
    ("1ms", "must be between 1s and 168h"),
    ("30d", "invalid duration"),
    ("banana", "invalid duration"),
])
def test_max_age_out_of_bounds_is_located(value: str, message: str) -> None:
    text = HEAD + textwrap.dedent(f"""\
        bots:
          - name: a
            user_id: bot_a
            catch_up:
              max_age: {value}
        """)
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="bots.yaml")
    assert str(caught.value).startswith("bots.yaml:6: bots[0].catch_up.max_age: ")
    assert message in str(caught.value)


# -- stored positions -------------------------------------------------------------------------

async def _roundtrip(store: Any) -> None:
    presence = {"lobby": RoomPresence(), "side": RoomPresence()}
    positions = Positions(store, "welcome", ["lobby", "side"], presence)
    assert all(row.position is None and row.present is None
               for row in (await positions.load()).values())
    positions.cursors["lobby"].epoch, positions.cursors["lobby"].offset = "e1", 41
    presence["lobby"].join(ClientInfo("alice", "c1"))
    await positions.flush()
    assert await store.keys(NAMESPACE) == ["welcome:lobby"]  # the side room has no epoch yet
    again = Positions(store, "welcome", ["lobby", "side"], {"lobby": RoomPresence(),
                                                             "side": RoomPresence()})
    rows = await again.load()
    assert rows["lobby"].position == StreamPosition(41, "e1")
    assert rows["lobby"].present == frozenset({"alice"})
    assert again.cursors["lobby"].offset == 41
    assert rows["side"].position is None


async def test_a_room_s_first_subscribe_writes_that_room_only() -> None:
    # Each room's first subscribe writes its row at once; writing every room each time made
    # the start of a bot in 2,000 rooms quadratic (4 million rows compared, seconds of CPU).
    rooms = [f"r{n}" for n in range(50)]

    class Counting(MemoryStateStore):
        writes = 0

        async def set(self, namespace: str, key: str, value: Any, *,
                      ttl: float | None = None) -> None:
            Counting.writes += 1
            await super().set(namespace, key, value, ttl=ttl)

    async with Counting() as store:
        positions = Positions(store, "welcome", rooms, {room: RoomPresence() for room in rooms})
        await positions.load()
        for n, room in enumerate(rooms):  # every room subscribed, none handled by its lane yet
            positions.cursors[room].epoch, positions.cursors[room].offset = "e", n
        await positions.store_first("r0")
        assert Counting.writes == 1
        for room in rooms:
            await positions.store_first(room)
        assert Counting.writes == len(rooms)
        assert sorted(await store.keys(NAMESPACE)) == sorted(f"welcome:{r}" for r in rooms)
        positions.cursors["r0"].offset = 99
        await positions.store_first("r0")  # stored already: left to the writer's second
        assert Counting.writes == len(rooms)


async def test_positions_survive_in_the_memory_store() -> None:
    async with MemoryStateStore() as store:
        await _roundtrip(store)


async def test_positions_survive_in_the_sqlite_file(tmp_path: Path) -> None:
    async with SQLiteStateStore(tmp_path / "state.sqlite") as store:
        await _roundtrip(store)


class _CountingStore(MemoryStateStore):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.written = asyncio.Event()

    async def set(self, namespace: str, key: str, value: Any, *,
                  ttl: float | None = None) -> None:
        self.writes += 1
        await super().set(namespace, key, value, ttl=ttl)
        self.written.set()


async def test_a_flush_writes_only_what_moved() -> None:
    async with _CountingStore() as store:
        positions = Positions(store, "b", ["lobby"], {"lobby": RoomPresence()})
        await positions.load()
        cursor = positions.cursors["lobby"]
        cursor.epoch = "e"
        for offset in range(1, 500):  # many envelopes handled between two flushes: one write
            cursor.offset = offset
        await positions.flush()
        await positions.flush()
        assert store.writes == 1
        cursor.offset += 1
        await positions.flush()
        assert store.writes == 2


async def test_a_hand_edited_row_counts_as_none() -> None:
    async with MemoryStateStore() as store:
        await store.set(NAMESPACE, "b:lobby", {"epoch": 3, "offset": "x", "present": "y"})
        rows = await Positions(store, "b", ["lobby"], {"lobby": RoomPresence()}).load()
        assert rows["lobby"].position is None
        assert rows["lobby"].present is None


# -- a state file that can't be used ----------------------------------------------------------

def _run(tmp_path: Path, state: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "bots.yaml").write_text(textwrap.dedent(f"""\
        xshathra: {{project_id: p, realtime_url: "ws://127.0.0.1:9/", api_url:
          "http://127.0.0.1:9/", server_api_key: k}}
        state: {{path: {state}}}
        bots: [{{name: a, user_id: bot_a}}]
        """))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, "-m", "botkit", "run", "-c",
                           str(tmp_path / "bots.yaml")], capture_output=True, text=True,
                          timeout=60, env=env, check=False)


def test_a_corrupt_state_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    state.write_bytes(b"this is not a database, it was overwritten by mistake" * 40)
    result = _run(tmp_path, state)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"botkit: cannot use the state file {state}: file is not a database"]


def _read_only(path: Path) -> bool:
    """Make ``path`` read-only even for root (immutable), where the system allows it."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        return True
    return subprocess.run(["chattr", "+i", str(path)], capture_output=True,
                          check=False).returncode == 0


def test_a_read_only_state_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    db = sqlite3.connect(state)
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    if not _read_only(state):
        pytest.skip("cannot make a file read-only here")
    try:
        result = _run(tmp_path, state)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(state)], check=False)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"botkit: cannot use the state file {state}: ")
    assert "readonly" in line


async def test_the_store_refuses_a_corrupt_file_when_it_opens(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    state.write_bytes(b"\x00garbage" * 500)
    with pytest.raises(StateFileError, match="not a database"):
        async with SQLiteStateStore(state):
            pass


async def test_a_replayed_envelope_already_answered_live_is_not_answered_twice() -> None:
    # A crash replays what was handled in the last unflushed second: the replies carry the
    # same idempotency keys (bot, envelope id, reply number), and the server absorbs them.
    from botkit.envelope import chat_message, envelope_to_dict

    async with BotHarness(bot) as h:
        message = envelope_to_dict(chat_message(room_id="lobby", sender_id="user",
                                                text="/roll", sent_at=h.now))
        assert (await h.publish(message, as_user="user")).texts == ["rolled"]
        keys = [p.idempotency_key for p in h.published]
        assert (await h.publish(message, as_user="user", replayed=True)).texts == []
        assert h.server.absorbed == 1
        assert keys == [f"replays:{message['id']}:1"]
    assert seen == [(False, timedelta(0)), (True, timedelta(0))]


async def test_the_writer_starts_when_touched_and_writes_once_per_interval(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from botkit.runtime import positions as positions_module

    monkeypatch.setattr(positions_module, "FLUSH_INTERVAL", 0.05)
    async with _CountingStore() as store:
        positions = Positions(store, "b", ["lobby"], {"lobby": RoomPresence()})
        cursor = positions.cursors["lobby"]
        cursor.epoch, cursor.offset = "e", 1
        try:
            await asyncio.sleep(0.2)
            assert store.writes == 0  # moved, but nobody said so: an idle bot has no task
            positions.touch()
            assert positions._writer is None  # a timer waits out the interval, not a task
            for offset in range(2, 50):
                cursor.offset = offset
                if not positions.pending:
                    positions.touch()
            async with asyncio.timeout(2):
                await store.written.wait()
            assert await store.get(NAMESPACE, "b:lobby") == {
                "epoch": "e", "offset": 49, "present": []}
            await asyncio.sleep(0.2)
            assert store.writes == 1
            assert positions._writer is None  # nothing moved since: the writer ended
            assert positions._timer is None  # and no timer waits: an idle bot holds neither
            cursor.offset = 50
            positions.touch()
        finally:
            await positions.aclose()  # stops the writer at once, and writes what is left
        assert store.writes == 2
        assert (await store.get(NAMESPACE, "b:lobby"))["offset"] == 50
