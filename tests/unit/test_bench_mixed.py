"""The pure parts of bench S13 (bench/mixed.py): the Poisson schedule, the traffic mix, the room
split, latency pairing, and envelopes botkit takes as valid."""

from __future__ import annotations

import itertools
import random
import statistics
from collections import Counter

import pytest

from bench.mixed import (
    KINDS,
    Arrival,
    envelope_for,
    pair_latencies,
    plan,
    poisson_arrivals,
    split_rooms,
)
from botkit.envelope import ChatMessage, Typing, UserJoined, UserLeft, parse_envelope


def test_poisson_arrivals_have_the_rate_and_exponential_gaps() -> None:
    rate, seconds = 2000.0, 10.0
    times = poisson_arrivals(rate, seconds, random.Random(1))
    expected = rate * seconds
    # A Poisson count has standard deviation sqrt(mean): 5 of them is far outside chance.
    assert abs(len(times) - expected) < 5 * expected ** 0.5
    assert times == sorted(times)
    assert times[0] >= 0
    assert times[-1] < seconds
    gaps = [b - a for a, b in itertools.pairwise(times)]
    mean = statistics.fmean(gaps)
    assert mean == pytest.approx(1 / rate, rel=0.05)
    # Exponential gaps: standard deviation equal to the mean (evenly spaced arrivals have 0).
    assert statistics.pstdev(gaps) / mean == pytest.approx(1.0, abs=0.05)


def test_poisson_arrivals_of_nothing() -> None:
    assert poisson_arrivals(0, 5, random.Random(1)) == []
    assert poisson_arrivals(100, 0, random.Random(1)) == []


def test_plan_is_fixed_by_its_seed() -> None:
    assert plan(500, 2, 50, seed=3) == plan(500, 2, 50, seed=3)
    assert plan(500, 2, 50, seed=3) != plan(500, 2, 50, seed=4)


def test_plan_mixes_kinds_in_their_shares_over_every_room() -> None:
    arrivals = plan(2000, 10, 500, seed=7)
    kinds = Counter(a.kind for a in arrivals)
    for kind, share in KINDS:
        assert kinds[kind] / len(arrivals) == pytest.approx(share, abs=0.01), kind
    rooms = Counter(a.room for a in arrivals)
    assert set(rooms) == set(range(500))
    assert all(isinstance(a, Arrival) for a in arrivals)


def test_split_rooms_gives_each_room_one_bot() -> None:
    rooms = [f"r{i:03d}" for i in range(500)]
    split = split_rooms(rooms, 3)
    assert [len(s) for s in split] == [167, 167, 166]
    assert sorted(r for s in split for r in s) == rooms


def test_pair_latencies_in_ms_and_the_lost() -> None:
    latencies, lost = pair_latencies({"a": 10.0, "b": 11.0, "c": 12.0},
                                     {"a": 10.002, "c": 12.5, "x": 1.0})
    assert latencies == pytest.approx([2.0, 500.0])
    assert lost == 1


@pytest.mark.parametrize(("kind", "model"), [
    ("chat", ChatMessage), ("command", ChatMessage), ("typing", Typing),
    ("joined", UserJoined), ("left", UserLeft)])
def test_every_kind_is_an_envelope_botkit_takes(kind: str, model: type) -> None:
    data = envelope_for(Arrival(0.0, 3, kind), 42, "r003", "2026-12-03T12:00:00.000Z")
    envelope = parse_envelope(data)
    assert isinstance(envelope, model)
    assert envelope.id == data["id"]
    assert envelope.room_id == "r003"
    if kind == "command":
        assert data["text"].startswith("/echo ")
