"""SQLiteJobStore: the APScheduler 3 job store on the bots' SQLite state file, served from memory
and written by the file's worker thread. No server."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from botkit.errors import StateError
from botkit.jobs.codec import encode_job
from botkit.jobs.store import SQLiteJobStore

BASE = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
"""Whole seconds: the due-time column is a float timestamp, exact for these."""

# A scheduler that is never started: jobs need one, the store only passes it along.
SCHEDULER = AsyncIOScheduler(timezone=UTC)


def target(*args: Any, **kwargs: Any) -> None:
    """The function the jobs of these tests name (it must be importable)."""


def make_job(job_id: str, at: datetime | None, **kwargs: Any) -> Job:
    return Job(SCHEDULER, id=job_id, func=target, trigger=DateTrigger(run_date=at or BASE),
               executor="default", args=("bot", job_id), kwargs=kwargs, name=job_id,
               misfire_grace_time=30, coalesce=True, max_instances=1, next_run_time=at)


async def open_store(path: Path) -> SQLiteJobStore:
    store = SQLiteJobStore(path)
    await store.load()
    store.start(SCHEDULER, "dynamic")
    return store


async def close_store(store: SQLiteJobStore) -> None:
    store.shutdown()  # what APScheduler calls
    await store.aclose()  # what BotScheduler.shutdown() then awaits: writes what is pending


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteJobStore]:
    opened = await open_store(tmp_path / "state.sqlite")
    try:
        yield opened
    finally:
        await close_store(opened)


def ids(jobs: list[Job]) -> list[str]:
    return [job.id for job in jobs]


async def test_add_and_lookup_round_trip(store: SQLiteJobStore) -> None:
    store.add_job(make_job("a", BASE, text="hello", n=[1, 2]))
    job = store.lookup_job("a")
    assert job is not None
    assert job.id == "a"
    assert job.next_run_time == BASE
    assert job.args == ("bot", "a")
    assert job.kwargs == {"text": "hello", "n": [1, 2]}
    assert job.func is target
    assert isinstance(job.trigger, DateTrigger)
    assert job._jobstore_alias == "dynamic"
    assert store.lookup_job("missing") is None


async def test_adding_an_existing_id_conflicts(store: SQLiteJobStore) -> None:
    store.add_job(make_job("a", BASE, v=1))
    with pytest.raises(ConflictingIdError):
        store.add_job(make_job("a", BASE + timedelta(hours=1), v=2))
    job = store.lookup_job("a")
    assert job is not None
    assert (job.next_run_time, job.kwargs) == (BASE, {"v": 1})


async def test_update_replaces_the_stored_job(store: SQLiteJobStore) -> None:
    store.add_job(make_job("a", BASE, v=1))
    store.add_job(make_job("b", BASE + timedelta(seconds=5)))
    later = BASE + timedelta(minutes=10)
    store.update_job(make_job("a", later, v=2))
    job = store.lookup_job("a")
    assert job is not None
    assert (job.next_run_time, job.kwargs) == (later, {"v": 2})
    # The due-time column moved too: "b" is now the next one.
    assert store.get_next_run_time() == BASE + timedelta(seconds=5)
    assert ids(store.get_due_jobs(BASE + timedelta(minutes=1))) == ["b"]


async def test_updating_or_removing_an_unknown_job_raises(store: SQLiteJobStore) -> None:
    with pytest.raises(JobLookupError):
        store.update_job(make_job("ghost", BASE))
    with pytest.raises(JobLookupError):
        store.remove_job("ghost")
    assert store.get_all_jobs() == []


async def test_remove_and_remove_all(store: SQLiteJobStore) -> None:
    for name in ("a", "b", "c"):
        store.add_job(make_job(name, BASE))
    store.remove_job("b")
    assert ids(store.get_all_jobs()) == ["a", "c"]
    with pytest.raises(JobLookupError):
        store.remove_job("b")
    store.remove_all_jobs()
    assert store.get_all_jobs() == []
    assert store.get_next_run_time() is None


async def test_due_jobs_come_in_time_order_then_id(store: SQLiteJobStore) -> None:
    at = {"late": 30, "first": 1, "b_tie": 10, "a_tie": 10, "future": 3600, "now": 60}
    for name, seconds in at.items():
        store.add_job(make_job(name, BASE + timedelta(seconds=seconds)))
    store.add_job(make_job("paused", None))
    due = store.get_due_jobs(BASE + timedelta(seconds=60))
    assert ids(due) == ["first", "a_tie", "b_tie", "late", "now"]  # <= now is due
    assert store.get_due_jobs(BASE) == []


async def test_next_run_time_ignores_paused_jobs(store: SQLiteJobStore) -> None:
    assert store.get_next_run_time() is None
    store.add_job(make_job("paused", None))
    assert store.get_next_run_time() is None
    store.add_job(make_job("later", BASE + timedelta(hours=2)))
    store.add_job(make_job("sooner", BASE + timedelta(hours=1)))
    assert store.get_next_run_time() == BASE + timedelta(hours=1)


async def test_paused_jobs_sort_last(store: SQLiteJobStore) -> None:
    store.add_job(make_job("a_paused", None))
    store.add_job(make_job("z", BASE + timedelta(seconds=2)))
    store.add_job(make_job("b_paused", None))
    store.add_job(make_job("y", BASE + timedelta(seconds=1)))
    jobs = store.get_all_jobs()
    assert ids(jobs) == ["y", "z", "a_paused", "b_paused"]
    assert jobs[-1].next_run_time is None
    assert ids(store.get_due_jobs(BASE + timedelta(days=1))) == ["y", "z"]


async def test_jobs_persist_across_store_instances(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "state.sqlite"  # the folder is created
    first = await open_store(path)
    try:
        first.add_job(make_job("kept", BASE, text="still here"))
        first.add_job(make_job("gone", BASE))
        first.remove_job("gone")
    finally:
        await close_store(first)
    second = await open_store(path)
    try:
        (job,) = second.get_all_jobs()
        assert (job.id, job.next_run_time, job.kwargs) == ("kept", BASE, {"text": "still here"})
        assert second.get_next_run_time() == BASE
    finally:
        await close_store(second)


def _raw_insert(path: Path, job_id: str, row: str) -> None:
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute("INSERT INTO botkit_jobs_json (id, next_run_time, job) VALUES (?, ?, ?)",
                       (job_id, BASE.timestamp(), row))
    finally:
        db.close()


def _row_count(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        count: int = db.execute("SELECT COUNT(*) FROM botkit_jobs_json").fetchone()[0]
        return count
    finally:
        db.close()


def _row_naming(func: str, **changes: Any) -> str:
    row = json.loads(encode_job(make_job("x", BASE)))
    row.update(func=func, **changes)
    return json.dumps(row)


@pytest.mark.parametrize("row", [
    pytest.param(_row_naming("tests.no_such_plugin:announce"), id="module-gone"),
    pytest.param(_row_naming("tests.test_jobstore:no_such_function"), id="function-gone"),
    pytest.param("not json", id="garbage"),
    pytest.param(json.dumps({"format": 99}), id="other-format"),
    pytest.param(_row_naming(f"{__name__}:target", coalesce=1), id="wrong-type"),
    pytest.param(_row_naming(f"{__name__}:target", trigger={"cron": "* * * * *"}),
                 id="other-trigger"),
])
async def test_a_row_that_cannot_be_restored_is_dropped_and_logged(
        tmp_path: Path, row: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.sqlite"
    first = await open_store(path)
    first.add_job(make_job("before", BASE - timedelta(seconds=1)))
    first.add_job(make_job("after", BASE + timedelta(seconds=1)))
    await close_store(first)
    _raw_insert(path, "broken", row)
    with caplog.at_level(logging.ERROR, logger="botkit.jobs.store"):
        store = await open_store(path)
    try:
        assert ids(store.get_due_jobs(BASE + timedelta(seconds=5))) == ["before", "after"]
        (message,) = [r.getMessage() for r in caplog.records]
        assert message.startswith(f"dropping job broken of {path}: it can't be restored: ")
    finally:
        await close_store(store)
    assert _row_count(path) == 2  # removed from the table, not only skipped
    caplog.clear()
    await close_store(await open_store(path))
    assert caplog.records == []  # dropped once, not logged again


async def test_a_path_under_a_file_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file, not a folder")
    store = SQLiteJobStore(blocker / "state.sqlite")
    with pytest.raises(StateError, match=r"cannot open the state file .*not_a_dir"):
        await store.load()
    with pytest.raises(StateError, match="is not loaded"):
        store.start(SCHEDULER, "dynamic")
    with pytest.raises(StateError, match="is not open"):
        store.get_all_jobs()


def _open_descriptors_to(path: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                found.append(fd)
        except OSError:
            continue
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
async def test_a_file_that_is_not_a_database_is_a_state_error_and_not_left_open(
        tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"this is not a SQLite database, only some text " * 100)
    store = SQLiteJobStore(path)
    with pytest.raises(StateError, match="cannot use the state file") as info:
        await store.load()
    assert _open_descriptors_to(path) == []
    assert info.value.__cause__ is not None


async def test_a_closed_store_refuses_calls(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "state.sqlite")
    await close_store(store)
    await close_store(store)  # twice is fine
    with pytest.raises(StateError, match="is not open"):
        store.add_job(make_job("a", BASE))
    assert repr(store) == f"<SQLiteJobStore {tmp_path / 'state.sqlite'}>"
