"""ULIDs: format, order, time, threads. Pure: time and randomness are faked where it matters."""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

import botkit.ulid as ulid_module
from botkit.errors import EnvelopeError
from botkit.ulid import ULID_LENGTH, is_ulid, new_ulid, ulid_timestamp

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def reference_encode(value: int) -> str:
    """The spec's encoding, written the slow obvious way: 26 digits of 5 bits, most significant
    first."""
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(ULID_LENGTH)))


def reference_decode(ulid: str) -> int:
    value = 0
    for char in ulid.upper():
        value = value * 32 + CROCKFORD.index(char)
    return value


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Freeze the generator's clock at a given millisecond; randomness becomes 00 01 02 ...;
    the generator starts afresh."""
    now = {"ms": 0}
    monkeypatch.setattr(ulid_module, "time",
                        SimpleNamespace(time_ns=lambda: now["ms"] * 1_000_000 + 999_999))
    monkeypatch.setattr(ulid_module, "os", SimpleNamespace(urandom=lambda n: bytes(range(n))))
    monkeypatch.setattr(ulid_module, "_state", ulid_module._MonotonicState())

    def set_ms(ms: int) -> None:
        now["ms"] = ms

    return set_ms


def test_format() -> None:
    for ulid in (new_ulid() for _ in range(100)):
        assert len(ulid) == ULID_LENGTH
        assert set(ulid) <= set(CROCKFORD)
        assert ulid[0] in "01234567"
        assert is_ulid(ulid)


def test_encoding_matches_the_spec(fake_clock: Callable[[int], None]) -> None:
    # The spec's example: time 1469918176385 is written 01ARYZ6S41.
    fake_clock(1469918176385)
    ulid = new_ulid()
    assert ulid[:10] == "01ARYZ6S41"
    randomness = int.from_bytes(bytes(range(10)))
    assert ulid == reference_encode((1469918176385 << 80) | randomness)


def test_extreme_values_encode() -> None:
    assert ulid_module._encode(0) == "0" * 26
    assert ulid_module._encode((1 << 128) - 1) == "7" + "Z" * 25
    assert is_ulid("7" + "Z" * 25)


def test_monotonic_in_a_tight_loop() -> None:
    ulids = [new_ulid() for _ in range(10_000)]
    assert all(a < b for a, b in itertools.pairwise(ulids))


def test_same_millisecond_increments_the_random_part(fake_clock: Callable[[int], None]) -> None:
    fake_clock(1_700_000_000_000)
    values = [reference_decode(new_ulid()) for _ in range(5)]
    assert [b - a for a, b in itertools.pairwise(values)] == [1, 1, 1, 1]


def test_clock_going_back_keeps_the_order(fake_clock: Callable[[int], None]) -> None:
    fake_clock(1_700_000_000_500)
    first = new_ulid()
    fake_clock(1_700_000_000_000)  # NTP stepped the clock back
    second = new_ulid()
    assert first < second
    assert ulid_timestamp(second) == ulid_timestamp(first)


def test_random_overflow_moves_to_the_next_millisecond(
        fake_clock: Callable[[int], None]) -> None:
    fake_clock(1_700_000_000_000)
    first = new_ulid()
    ulid_module._state.random = (1 << 80) - 1
    second = new_ulid()
    assert first < second
    assert ulid_timestamp(second) - ulid_timestamp(first) == timedelta(milliseconds=1)


def test_sorts_by_time(fake_clock: Callable[[int], None],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    stamps = [1, 999, 1_000, 1_469_918_176_385, 1_700_000_000_000, (1 << 48) - 1]
    made = []
    for ms in stamps:
        # A fresh generator per id: the order must come from the timestamp, not from the
        # monotonic counter.
        monkeypatch.setattr(ulid_module, "_state", ulid_module._MonotonicState())
        fake_clock(ms)
        made.append(new_ulid())
    assert sorted(made) == made
    assert [reference_decode(u) >> 80 for u in made] == stamps


def test_later_ids_sort_later_in_real_time() -> None:
    first = new_ulid()
    time.sleep(0.003)
    second = new_ulid()
    assert first < second
    assert ulid_timestamp(first) < ulid_timestamp(second)


def test_timestamp_round_trip() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    ulid = new_ulid()
    after = datetime.now(UTC)
    stamp = ulid_timestamp(ulid)
    assert stamp.tzinfo is UTC
    assert before <= stamp <= after
    assert stamp.microsecond % 1000 == 0


def test_timestamp_of_the_spec_example() -> None:
    stamp = ulid_timestamp("01ARYZ6S41TSV4RRFFQ69G5FAV")
    assert stamp == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=1469918176385)
    assert ulid_timestamp("01aryz6s41tsv4rrffq69g5fav") == stamp


@pytest.mark.parametrize("value", [
    "", "01ARYZ6S41TSV4RRFFQ69G5FA", "01ARYZ6S41TSV4RRFFQ69G5FAVX",  # 25 and 27 characters
    "01ARYZ6S41TSV4RRFFQ69G5FAI", "01ARYZ6S41TSV4RRFFQ69G5FAL",  # letters Crockford leaves out
    "01ARYZ6S41TSV4RRFFQ69G5FAO", "01ARYZ6S41TSV4RRFFQ69G5FAU",
    "81ARYZ6S41TSV4RRFFQ69G5FAV",  # more than 128 bits
    "01ARYZ6S41TSV4RRFFQ69G5FA ", " 01ARYZ6S41TSV4RRFFQ69G5FA", "+1ARYZ6S41TSV4RRFFQ69G5FAV",
    "01ARYZ6S41TSV4RRFFQ69G5FAß",
    None, 12345, b"01ARYZ6S41TSV4RRFFQ69G5FAV",
])
def test_not_ulids(value: object) -> None:
    assert not is_ulid(value)
    with pytest.raises(EnvelopeError, match="not a ULID"):
        ulid_timestamp(value)  # type: ignore[arg-type]


def test_timestamp_beyond_year_9999_is_an_envelope_error() -> None:
    with pytest.raises(EnvelopeError, match="9999"):
        ulid_timestamp("7" + "Z" * 25)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
# Python 3.12+ warns about forking while other threads (of other tests) live; the child only
# writes one id and leaves, so that is safe here.
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_does_not_continue_the_parents_sequence(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Frozen clock: without the reset at fork, parent and child would both hand out first + 1.
    monkeypatch.setattr(ulid_module, "time", SimpleNamespace(time_ns=lambda: 1_700_000_000_000 *
                                                             1_000_000))
    new_ulid()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one id and leave at once, whatever happens
        try:
            os.write(write_end, new_ulid().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as pipe:
        child_ulid = pipe.read().decode()
    assert is_ulid(child_ulid)
    assert child_ulid != new_ulid()


def test_thread_safety() -> None:
    threads_count, per_thread = 8, 3_000
    results: list[list[str]] = [[] for _ in range(threads_count)]
    barrier = threading.Barrier(threads_count)

    def work(out: list[str]) -> None:
        barrier.wait()
        out.extend(new_ulid() for _ in range(per_thread))

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible to provoke races
    try:
        threads = [threading.Thread(target=work, args=(out,)) for out in results]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(old_interval)
    everything = [ulid for out in results for ulid in out]
    assert len(everything) == threads_count * per_thread
    assert len(set(everything)) == len(everything)
    for out in results:
        assert all(a < b for a, b in itertools.pairwise(out))
