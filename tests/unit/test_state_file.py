"""The state file as the daemon meets it: another process holding SQLite's write lock (the loop
keeps running; a lock held too long is a clear error), another botkit process on the same file
(refused, naming its pid), and a file that someone else wrote (no pickle, no imports). No
server: real SQLite files, real second processes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import sqlite3
import stat
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from botkit.errors import StateError, StateInUseError, StateTimeoutError
from botkit.jobs.scheduler import BotScheduler
from botkit.jobs.store import SQLiteJobStore
from botkit.state import SQLiteStateStore
from botkit.state.filelock import lock_path

ROOT = Path(__file__).resolve().parents[2]
NS = "bot"


async def remind(ctx: Any, text: str = "") -> None:
    """A module-level job function, as ctx.schedule needs."""


APSCHEDULER = AsyncIOScheduler(timezone=UTC)  # never started: jobs only need one


def a_job(job_id: str) -> Job:
    when = datetime.now(UTC) + timedelta(hours=1)
    return Job(APSCHEDULER, id=job_id, func=remind, trigger=DateTrigger(run_date=when),
               executor="default", args=(None,), kwargs={}, name=job_id, misfire_grace_time=30,
               coalesce=True, max_instances=1, next_run_time=when)


def exists(path: Path) -> bool:
    return path.exists()


class Ticker:
    """Measures the event loop's responsiveness: the longest gap between 10 ms ticks."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.ticks = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.01)
            now = loop.time()
            self.longest = max(self.longest, now - last)
            self.ticks += 1
            last = now


@pytest.fixture
async def ticker() -> AsyncIterator[Ticker]:
    measured = Ticker()
    task = asyncio.create_task(measured.run())
    try:
        yield measured
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


_HOLD_WRITE_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
"""


class WriteLockHolder:
    """A second process holding the file's SQLite write lock until :meth:`release`."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def release(self) -> None:
        assert self.process.stdin is not None
        if self.process.returncode is None:
            self.process.stdin.write(b"go\n")
            await self.process.stdin.drain()
            async with asyncio.timeout(10):
                await self.process.wait()


@pytest.fixture
async def hold_write_lock() -> AsyncIterator[Any]:
    holders: list[WriteLockHolder] = []

    async def hold(path: Path) -> WriteLockHolder:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _HOLD_WRITE_LOCK, str(path),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        holder = WriteLockHolder(process)
        holders.append(holder)
        assert process.stdout is not None
        async with asyncio.timeout(10):
            assert await process.stdout.readline() == b"locked\n"
        return holder

    try:
        yield hold
    finally:
        for holder in holders:
            if holder.process.returncode is None:
                holder.process.kill()
                await holder.process.wait()


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


# --- no blocking on the loop ------------------------------------------------------------------


async def test_a_write_lock_held_by_another_process_does_not_stall_the_loop(
        tmp_path: Path, ticker: Ticker, hold_write_lock: Any) -> None:
    """ctx.state and ctx.schedule while another process holds the write lock for a second:
    the loop keeps ticking, and everything reaches the file once the lock is released."""
    path = tmp_path / "state.sqlite"
    scheduler = BotScheduler(store_path=path)
    async with SQLiteStateStore(path) as state:
        await scheduler.open()
        try:
            holder = await hold_write_lock(path)
            ticker.longest = 0.0
            # APScheduler's job store is called synchronously on the loop: each of these
            # waited for the lock there before.
            for number in range(20):
                scheduler.schedule(NS, remind, delay=3600, id=f"job{number}",
                                   kwargs={"text": "x"})
            writing = asyncio.create_task(state.set(NS, "k", "written"))
            await asyncio.sleep(1.0)
            assert not writing.done()  # it does wait for the lock, off the loop
            await holder.release()
            async with asyncio.timeout(10):
                await writing
            assert len(scheduler.jobs(NS)) == 20  # served from memory meanwhile
        finally:
            await scheduler.shutdown(0)  # writes the pending job changes, and waits for them
        assert await state.get(NS, "k") == "written"
    assert ticker.longest < 0.5, f"the loop stalled for {ticker.longest:.2f} s"
    assert len(rows(path, "SELECT id FROM botkit_jobs_json")) == 20


async def test_a_lock_held_past_the_timeout_is_a_state_timeout_naming_the_file(
        tmp_path: Path, ticker: Ticker, hold_write_lock: Any) -> None:
    path = tmp_path / "state.sqlite"
    async with SQLiteStateStore(path, timeout=0.3) as state:
        jobs = SQLiteJobStore(path, timeout=0.3)
        await jobs.load()
        jobs.start(APSCHEDULER, "dynamic")
        await hold_write_lock(path)
        ticker.longest = 0.0
        with pytest.raises(StateTimeoutError) as info:
            await state.set(NS, "k", 1)
        assert str(path) in str(info.value)
        assert isinstance(info.value, StateError)

        jobs.add_job(a_job("j"))  # accepted in memory; its write can't get through
        jobs.shutdown()
        with pytest.raises(StateTimeoutError, match=str(path)):
            await jobs.aclose()
    assert ticker.longest < 0.5, f"the loop stalled for {ticker.longest:.2f} s"


# --- one process per state file ---------------------------------------------------------------

_OPEN_AND_WAIT = """
import asyncio, sys
from botkit.state import SQLiteStateStore

async def main():
    async with SQLiteStateStore(sys.argv[1]):
        print("open", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

asyncio.run(main())
"""


async def test_a_second_process_is_refused_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    other = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _OPEN_AND_WAIT, str(path), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert other.stdout is not None
    try:
        async with asyncio.timeout(20):
            assert await other.stdout.readline() == b"open\n"
        with pytest.raises(StateInUseError) as info:
            await SQLiteStateStore(path).open()
        assert info.value.pid == other.pid
        assert f"state file {path} is in use by another botkit process (pid {other.pid})" in (
            str(info.value))
        with pytest.raises(StateInUseError):
            await BotScheduler(store_path=path).open()  # the job store too
        other.kill()  # however the holder ends, the kernel drops its lock
        await other.wait()
        async with SQLiteStateStore(path) as store:
            await store.set(NS, "k", 1)
    finally:
        if other.returncode is None:
            other.kill()
            await other.wait()


async def test_stores_of_one_process_share_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    async with SQLiteStateStore(path) as one, SQLiteStateStore(path) as two:
        scheduler = BotScheduler(store_path=path)
        await scheduler.open()
        await scheduler.shutdown(0)
        await one.set(NS, "k", 1)
        assert await two.get(NS, "k") == 1
    async with SQLiteStateStore(path) as again:  # closed for good: open again at once
        assert await again.get(NS, "k") == 1


async def test_the_state_file_and_its_lock_are_private(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    async with SQLiteStateStore(path) as store:
        await store.set(NS, "k", 1)
        for made in (path, lock_path(path), path.with_name(path.name + "-wal")):
            assert stat.S_IMODE(made.stat().st_mode) == 0o600, made


# --- a file someone else wrote ----------------------------------------------------------------


class _Payload:
    """What an attacker writes into a pickle: unpickling it makes a directory."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def _legacy_table(path: Path, payloads: list[bytes]) -> None:
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute("CREATE TABLE botkit_jobs (id TEXT PRIMARY KEY, next_run_time REAL, "
                       "job_state BLOB NOT NULL)")
            for number, payload in enumerate(payloads):
                db.execute("INSERT INTO botkit_jobs VALUES (?, ?, ?)",
                           (f"{NS}:job{number}", 0.0, payload))
    finally:
        db.close()


async def test_pickled_jobs_of_an_old_file_are_refused_never_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    marker = tmp_path / "pwned"
    _legacy_table(path, [pickle.dumps(_Payload(marker))])
    scheduler = BotScheduler(store_path=path)

    async def open_and_list() -> None:
        await scheduler.open()
        scheduler.jobs(NS)  # where the old store unpickled the rows

    try:
        with pytest.raises(StateError) as info:
            await open_and_list()
    finally:
        await scheduler.shutdown(0)
    assert not exists(marker)
    message = str(info.value)
    assert f"state file {path}: table botkit_jobs holds 1 job(s) stored as pickles" in message
    assert f"sqlite3 {path} 'ALTER TABLE botkit_jobs RENAME TO botkit_jobs_pickled'" in message
    assert rows(path, "SELECT COUNT(*) FROM botkit_jobs") == [(1,)]  # left as it was


async def test_an_empty_old_job_table_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    _legacy_table(path, [])
    scheduler = BotScheduler(store_path=path)
    await scheduler.open()
    scheduler.schedule(NS, remind, delay=60, id="new")
    await scheduler.shutdown(0)
    tables = rows(path, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    assert tables == [("botkit_jobs_json",)]


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable module that leaves a file behind when it is imported."""
    marker = tmp_path / "imported"
    (tmp_path / "botkit_canary_module.py").write_text(textwrap.dedent(f"""\
        open({str(marker)!r}, "w").close()

        def job(*args, **kwargs):
            pass
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "botkit_canary_module", raising=False)
    return marker


async def _stored_row(path: Path, **changes: Any) -> None:
    """A job row as botkit writes it, with ``changes`` made by someone else."""
    scheduler = BotScheduler(store_path=path)
    await scheduler.open()
    scheduler.schedule(NS, remind, at=datetime.now(UTC), id="edited", room="lobby")
    await scheduler.shutdown(0)
    (text,) = rows(path, "SELECT job FROM botkit_jobs_json")[0]
    row = json.loads(text)
    row.update(changes)
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute("UPDATE botkit_jobs_json SET job = ?", (json.dumps(row),))
    finally:
        db.close()


async def test_a_stored_function_of_a_module_not_loaded_is_not_imported(
        tmp_path: Path, canary: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.sqlite"
    await _stored_row(path, func="botkit_canary_module:job")
    scheduler = BotScheduler(store_path=path)
    await scheduler.open()
    try:
        with caplog.at_level(logging.ERROR, logger="botkit.jobs.store"):
            assert scheduler.jobs(NS) == []
    finally:
        await scheduler.shutdown(0)
    assert not exists(canary)
    assert "botkit_canary_module" not in sys.modules
    assert any("names module 'botkit_canary_module', which is not loaded" in message
               for message in caplog.messages)


class _OnRecord(logging.Handler):
    """Sets ``event`` when a record starting with ``text`` is logged."""

    def __init__(self, event: asyncio.Event, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.event = event
        self.text = text

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.text):
            self.event.set()


class _Host:
    name = NS

    def __init__(self) -> None:
        self.fired: list[str] = []

    async def run_job(self, job_id: str, run_time: datetime, target: str, room: str | None,
                      kwargs: Any) -> None:
        self.fired.append(target)


async def test_a_stored_job_target_of_a_module_not_loaded_is_not_run(
        tmp_path: Path, canary: Path) -> None:
    path = tmp_path / "state.sqlite"
    await _stored_row(path, args=[NS, "botkit_canary_module:job", "lobby"])
    scheduler = BotScheduler(store_path=path)
    host = _Host()
    await scheduler.open()
    scheduler.add_host(host, [])
    skipped = asyncio.Event()
    watcher = _OnRecord(skipped, "job bot:edited skipped: its target 'botkit_canary_module:job' "
                                 "names module 'botkit_canary_module', which is not loaded")
    logging.getLogger("botkit.jobs.scheduler").addHandler(watcher)
    try:
        scheduler.start()
        async with asyncio.timeout(10):
            await skipped.wait()
    finally:
        logging.getLogger("botkit.jobs.scheduler").removeHandler(watcher)
        await scheduler.shutdown(0)
    assert host.fired == []
    assert not exists(canary)
    assert "botkit_canary_module" not in sys.modules
