"""The per-bot state store: shared semantics on both backends, then what only SQLite does.

Time is an injected clock, so expiry is tested without sleeping.
"""

from __future__ import annotations

import asyncio
import datetime
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from botkit.config import StateConfig, parse_config
from botkit.errors import BotkitError, StateError
from botkit.state.store import (
    MAX_KEY_LENGTH,
    BotState,
    MemoryStateStore,
    SQLiteStateStore,
    StateStore,
    open_state_store,
)

NS = "welcome"


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_store(kind: str, path: Path, clock: FakeClock) -> StateStore:
    if kind == "memory":
        return MemoryStateStore(clock)
    return SQLiteStateStore(path / "state" / "state.sqlite", clock=clock)


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path,
                clock: FakeClock) -> AsyncIterator[StateStore]:
    async with make_store(request.param, tmp_path, clock) as opened:
        yield opened


def rows_in(path: Path) -> list[tuple[Any, ...]]:
    """The raw rows of the state table, read with a connection of our own."""
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT namespace, key, value FROM botkit_state "
                          "ORDER BY namespace, key").fetchall()
    finally:
        db.close()


# --- shared semantics -------------------------------------------------------------------------


async def test_get_set_delete_and_keys(store: StateStore) -> None:
    assert await store.get(NS, "a") is None
    assert await store.get(NS, "a", default=7) == 7
    await store.set(NS, "b", 2)
    await store.set(NS, "a", "one")
    await store.set(NS, "a", "uno")  # replaces
    assert await store.get(NS, "a") == "uno"
    assert await store.keys(NS) == ["a", "b"]
    assert await store.delete(NS, "a") is True
    assert await store.delete(NS, "a") is False
    assert await store.get(NS, "a", "gone") == "gone"
    assert await store.keys(NS) == ["b"]


async def test_a_stored_none_is_not_the_default(store: StateStore) -> None:
    await store.set(NS, "k", None)
    assert await store.get(NS, "k", default="absent") is None
    assert await store.keys(NS) == ["k"]


async def test_keys_by_prefix_are_sorted_and_literal(store: StateStore) -> None:
    for key in ["user:b", "user:a", "users", "User:c", "u%er", "u_er:x", "other"]:
        await store.set(NS, key, 1)
    assert await store.keys(NS, "user:") == ["user:a", "user:b"]
    assert await store.keys(NS, "user") == ["user:a", "user:b", "users"]
    # No LIKE semantics: '_' and '%' are ordinary characters, and case counts.
    assert await store.keys(NS, "u_") == ["u_er:x"]
    assert await store.keys(NS, "u%") == ["u%er"]
    assert await store.keys(NS, "zzz") == []
    assert len(await store.keys(NS)) == 7


async def test_nested_json_round_trips(store: StateStore) -> None:
    value = {"list": [1, -2, 3.5, "x", None, True, False, [], {}],
             "nested": {"deep": [{"k": "v"}, [1, [2, [3]]]]},
             "text": "üñí©ødé 日本 \u2028 \"quoted\" \\\\", "big": 2**70, "": 0}
    await store.set(NS, "v", value)
    got = await store.get(NS, "v")
    assert got == value
    assert type(got["list"][2]) is float
    assert type(got["list"][5]) is bool


async def test_stored_values_are_copies(store: StateStore) -> None:
    value: dict[str, Any] = {"seen": ["alice"]}
    await store.set(NS, "v", value)
    value["seen"].append("bob")
    got = await store.get(NS, "v")
    got["seen"].append("carol")
    assert await store.get(NS, "v") == {"seen": ["alice"]}


def cyclic() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


@pytest.mark.parametrize(("value", "detail"), [
    ({1, 2}, "the value is of type set"),
    ((1, 2), "the value is of type tuple"),
    ({1: "a"}, "the value has a non-string key 1"),
    ({"a": [1, {"b": b"x"}]}, "the value['a'][1]['b'] is of type bytes"),
    (float("nan"), "the value is nan"),
    ([float("inf")], "the value[0] is inf"),
    (datetime.date(2024, 1, 1), "the value is of type date"),
    (object(), "the value is of type object"),
    (cyclic(), "nested too deeply or contains itself"),
])
async def test_a_non_json_value_is_refused_naming_the_key(store: StateStore, value: Any,
                                                          detail: str) -> None:
    with pytest.raises(StateError, match="state key 'greeted'") as info:
        await store.set(NS, "greeted", value)
    assert detail in str(info.value)
    assert await store.get(NS, "greeted", "absent") == "absent"


@pytest.mark.parametrize("key", ["", "k" * (MAX_KEY_LENGTH + 1), 5, None, b"k", "\ud800"])
async def test_bad_keys_are_refused(store: StateStore, key: Any) -> None:
    with pytest.raises(StateError, match="state key"):
        await store.set(NS, key, 1)
    with pytest.raises(StateError, match="state key"):
        await store.get(NS, key)
    with pytest.raises(StateError, match="state namespace"):
        await store.get(key, "k")


async def test_the_longest_key_is_accepted(store: StateStore) -> None:
    key = "k" * MAX_KEY_LENGTH
    await store.set(NS, key, 1)
    assert await store.keys(NS) == [key]


async def test_expired_keys_read_as_absent(store: StateStore, clock: FakeClock) -> None:
    await store.set(NS, "cooldown", True, ttl=10)
    await store.set(NS, "forever", 1)
    clock.advance(9.9)
    assert await store.get(NS, "cooldown") is True
    assert await store.keys(NS) == ["cooldown", "forever"]
    clock.advance(0.1)
    assert await store.get(NS, "cooldown", "absent") == "absent"
    assert await store.keys(NS) == ["forever"]
    assert await store.delete(NS, "cooldown") is False
    clock.advance(10**6)
    assert await store.get(NS, "forever") == 1


async def test_set_replaces_the_expiry(store: StateStore, clock: FakeClock) -> None:
    await store.set(NS, "k", 1, ttl=5)
    await store.set(NS, "k", 2)  # no ttl: never expires
    await store.set(NS, "j", 1)
    await store.set(NS, "j", 2, ttl=5)
    clock.advance(6)
    assert await store.get(NS, "k") == 2
    assert await store.get(NS, "j") is None


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), True, "10"])
async def test_bad_ttls_are_refused(store: StateStore, ttl: Any) -> None:
    with pytest.raises(StateError, match="ttl must be"):
        await store.set(NS, "k", 1, ttl=ttl)
    await store.set(NS, "n", 1)
    with pytest.raises(StateError, match="ttl must be"):
        await store.incr(NS, "n", ttl=ttl)
    assert await store.get(NS, "n") == 1


async def test_incr_counts_from_zero_and_adds(store: StateStore) -> None:
    assert await store.incr(NS, "n") == 1
    assert await store.incr(NS, "n") == 2
    assert await store.incr(NS, "n", 10) == 12
    assert await store.incr(NS, "n", -20) == -8
    assert await store.incr(NS, "m", 5) == 5
    assert await store.get(NS, "n") == -8
    await store.set(NS, "s", 41)
    assert await store.incr(NS, "s") == 42
    assert await store.incr(NS, "huge", 2**70) == 2**70  # beyond SQLite's 64-bit integers
    assert await store.incr(NS, "huge") == 2**70 + 1


async def test_incr_of_an_expired_counter_starts_again(store: StateStore,
                                                       clock: FakeClock) -> None:
    await store.set(NS, "n", 100, ttl=1)
    clock.advance(1)
    assert await store.incr(NS, "n") == 1
    clock.advance(10**6)
    assert await store.get(NS, "n") == 1  # started without a ttl: never expires


async def test_incr_ttl_opens_a_window_that_increments_keep(store: StateStore,
                                                            clock: FakeClock) -> None:
    assert await store.incr(NS, "rolls", ttl=60) == 1
    clock.advance(50)
    assert await store.incr(NS, "rolls", ttl=60) == 2  # keeps the first expiry
    assert await store.incr(NS, "rolls") == 3
    clock.advance(10)
    assert await store.get(NS, "rolls") is None
    assert await store.incr(NS, "rolls", ttl=60) == 1


@pytest.mark.parametrize("value", ["3", 1.5, 2.0, True, None, [1], {"n": 1}])
async def test_incr_refuses_a_non_integer_value(store: StateStore, value: Any) -> None:
    await store.set(NS, "n", value)
    with pytest.raises(StateError, match=r"'n' holds a .*, not an integer"):
        await store.incr(NS, "n")
    assert await store.get(NS, "n") == value


@pytest.mark.parametrize("amount", [1.0, True, "1", None])
async def test_incr_refuses_a_non_integer_amount(store: StateStore, amount: Any) -> None:
    with pytest.raises(StateError, match="amount must be an int"):
        await store.incr(NS, "n", amount)
    assert await store.get(NS, "n") is None


async def test_concurrent_incr_loses_nothing(store: StateStore) -> None:
    results = await asyncio.gather(*(store.incr(NS, "hits") for _ in range(200)))
    assert sorted(results) == list(range(1, 201))
    assert await store.get(NS, "hits") == 200


async def test_namespaces_are_isolated(store: StateStore) -> None:
    welcome, dice = BotState(store, "welcome"), BotState(store, "dice")
    await welcome.set("k", "welcome's")
    await welcome.set("only", 1)
    await dice.set("k", "dice's")
    assert await welcome.incr("n") == 1
    assert await dice.incr("n") == 1
    assert await welcome.get("k") == "welcome's"
    assert await dice.get("k") == "dice's"
    assert await dice.get("only") is None
    assert await dice.keys() == ["k", "n"]
    assert await dice.delete("only") is False
    assert await welcome.delete("k") is True
    assert await dice.get("k") == "dice's"
    assert await welcome.keys() == ["n", "only"]


async def test_bot_state_passes_everything_through(store: StateStore,
                                                   clock: FakeClock) -> None:
    state = BotState(store, "welcome")
    assert state.namespace == "welcome"
    await state.set("greeted:alice", True, ttl=60)
    assert await state.keys("greeted:") == ["greeted:alice"]
    assert await state.get("greeted:bob", False) is False
    assert await state.incr("rolls", 3, ttl=5) == 3
    clock.advance(60)
    assert await state.get("greeted:alice") is None
    assert await state.keys() == []
    assert await store.get("welcome", "rolls") is None


@pytest.mark.parametrize("namespace", ["", 3])
def test_bot_state_needs_a_namespace(namespace: Any) -> None:
    with pytest.raises(StateError, match="namespace"):
        BotState(MemoryStateStore(), namespace)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_store_must_be_open(kind: str, tmp_path: Path, clock: FakeClock) -> None:
    store = make_store(kind, tmp_path, clock)
    with pytest.raises(StateError, match="not open"):
        await store.get(NS, "k")
    async with store:
        await store.set(NS, "k", 1)
    with pytest.raises(StateError, match="not open"):
        await store.set(NS, "k", 2)
    await store.aclose()  # closing twice is harmless
    await store.open()  # and a closed store can be opened again
    await store.open()
    try:
        assert await store.get(NS, "k") == 1
    finally:
        await store.aclose()


def test_state_error_is_part_of_the_tree() -> None:
    assert issubclass(StateError, BotkitError)


# --- SQLite -----------------------------------------------------------------------------------


async def test_sqlite_state_survives_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "deep" / "er" / "state.sqlite"  # parent folders are created
    async with SQLiteStateStore(path, clock=clock) as store:
        await store.set(NS, "greeted:alice", {"at": "2024-01-01", "count": 2})
        await store.set(NS, "cooldown", True, ttl=100)
        await store.incr("dice", "rolls", 5)
    clock.advance(50)
    async with SQLiteStateStore(path, clock=clock) as store:
        assert await store.get(NS, "greeted:alice") == {"at": "2024-01-01", "count": 2}
        assert await store.get(NS, "cooldown") is True  # the expiry survived too
        assert await store.incr("dice", "rolls") == 6
        clock.advance(50)
        assert await store.get(NS, "cooldown") is None


async def test_sqlite_purges_expired_rows_lazily_and_on_open(tmp_path: Path,
                                                             clock: FakeClock) -> None:
    path = tmp_path / "state.sqlite"
    async with SQLiteStateStore(path, clock=clock) as store:
        await store.set(NS, "a", 1, ttl=10)
        await store.set(NS, "b", 2, ttl=10)
        await store.set(NS, "c", 3)
        clock.advance(10)
        assert await store.get(NS, "a") is None
        assert [key for _, key, _ in rows_in(path)] == ["b", "c"]  # read: purged
    async with SQLiteStateStore(path, clock=clock):
        assert rows_in(path) == [(NS, "c", "3")]  # open: purged


async def test_sqlite_file_uses_wal_and_shares_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    async with SQLiteStateStore(path) as store:
        await store.set(NS, "k", 1)
        other = sqlite3.connect(path, isolation_level=None)
        try:
            assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            # Another module (the scheduler's job store) keeps its own table in the same file.
            other.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY)")
            other.execute("INSERT INTO jobs VALUES ('j1')")
            await store.set(NS, "k", 2)
            assert other.execute("SELECT id FROM jobs").fetchall() == [("j1",)]
        finally:
            other.close()
        assert await store.get(NS, "k") == 2


async def test_two_connections_to_one_file_count_exactly(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    async with SQLiteStateStore(path) as one, SQLiteStateStore(path) as two:
        await asyncio.gather(*(store.incr(NS, "hits") for _ in range(100)
                               for store in (one, two)))
        assert await one.get(NS, "hits") == await two.get(NS, "hits") == 200


async def test_a_corrupt_file_is_a_state_error(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"this is not a database, just garbage \x00\xff" * 200)
    store = SQLiteStateStore(path)
    with pytest.raises(StateError) as info:
        await store.open()
    assert str(path) in str(info.value)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    with pytest.raises(StateError, match="not open"):
        await store.get(NS, "k")
    await store.aclose()


async def test_an_unusable_path_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "a-folder").mkdir()
    with pytest.raises(StateError, match="a-folder") as info:
        await SQLiteStateStore(tmp_path / "a-folder").open()
    assert isinstance(info.value.__cause__, sqlite3.Error)

    (tmp_path / "a-file").write_text("")
    with pytest.raises(StateError, match="a-file") as info:
        await SQLiteStateStore(tmp_path / "a-file" / "state.sqlite").open()
    assert isinstance(info.value.__cause__, OSError)


async def test_sqlite_work_never_runs_on_the_event_loop_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []
    connect = sqlite3.connect

    def spy(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        threads.append(threading.current_thread())
        return connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", spy)
    async with SQLiteStateStore(tmp_path / "state.sqlite") as store:
        await store.set(NS, "k", 1)
        assert await store.incr(NS, "n") == 1
    # sqlite3's same-thread check is on: every later call ran on the connecting thread too.
    assert len(threads) == 1
    assert threads[0] is not threading.main_thread()
    assert threads[0] is not threading.current_thread()


async def test_a_locked_file_does_not_block_the_loop(tmp_path: Path) -> None:
    """Another writer holds the file's lock: our write waits for it on the worker thread while
    the loop keeps running, and gets through once the loop lets the other writer commit. Run on
    the loop, the write would block the loop, the commit would never come, and it would fail."""
    path = tmp_path / "state.sqlite"
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async with SQLiteStateStore(path) as store:
        other = sqlite3.connect(path, isolation_level=None)
        tick_task = asyncio.create_task(ticker())
        try:
            other.execute("BEGIN IMMEDIATE")
            asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
            async with asyncio.timeout(10):
                await store.set(NS, "k", "written")
        finally:
            tick_task.cancel()
            other.close()
        assert ticks >= 5
        assert await store.get(NS, "k") == "written"


async def test_a_hand_edited_value_that_is_not_json_is_a_state_error(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    async with SQLiteStateStore(path) as store:
        await store.set(NS, "k", "fine")
        db = sqlite3.connect(path)
        try:
            with db:
                db.execute("UPDATE botkit_state SET value = 'not json'")
        finally:
            db.close()
        with pytest.raises(StateError, match="'k' holds text that is not JSON"):
            await store.get(NS, "k")
        with pytest.raises(StateError, match="'k' holds text that is not JSON"):
            await store.incr(NS, "k")


# --- from the config --------------------------------------------------------------------------


async def test_open_state_store_follows_the_config(tmp_path: Path, clock: FakeClock) -> None:
    memory = open_state_store(StateConfig(backend="memory"), clock=clock)
    assert isinstance(memory, MemoryStateStore)

    text = ("xshathra:\n  project_id: proj_1\n"
            "  realtime_url: ws://localhost:3001/realtime/connection/websocket\n"
            "  api_url: http://localhost:3001/api/realtime\n  server_api_key: k\n"
            "bots: []\nstate: {path: var/state.sqlite}\n")
    store = open_state_store(parse_config(text, base_dir=tmp_path), clock=clock)
    assert isinstance(store, SQLiteStateStore)
    assert store.path == tmp_path / "var" / "state.sqlite"
    async with store:
        await BotState(store, NS).set("k", 1)
    assert rows_in(tmp_path / "var" / "state.sqlite") == [(NS, "k", "1")]

