"""The full-jitter backoff policy: a pure function of the attempt and a random draw."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from botkit.protocol import Backoff, full_jitter


@pytest.mark.parametrize(
    ("attempt", "draw", "expected"),
    [
        (0, 0.0, 0.0),
        (0, 0.5, 0.5),
        (1, 0.5, 1.0),
        (3, 0.5, 4.0),
        (3, 0.25, 2.0),
        (6, 0.5, 32.0),
        (7, 0.5, 50.0),  # window 128 capped at 100
    ],
)
def test_delay_is_draw_times_the_window(attempt: int, draw: float, expected: float) -> None:
    assert full_jitter(attempt, draw, base=1.0, cap=100.0) == expected


def test_delay_never_reaches_the_cap() -> None:
    delay = full_jitter(20, math.nextafter(1.0, 0.0), base=1.0, cap=5.0)
    assert 4.999 < delay < 5.0


@pytest.mark.parametrize("attempt", [31, 32, 1000, 10**6, 10**100])
def test_huge_attempts_do_not_overflow(attempt: int) -> None:
    assert full_jitter(attempt, 0.5, base=0.2, cap=20.0) == 10.0
    # Even an absurd base stays finite: the exponent is capped, then the window is capped.
    assert full_jitter(attempt, 0.5, base=1e300, cap=20.0) == 10.0


def test_exponent_cap_still_grows_up_to_it() -> None:
    tiny = 2.0**-40
    assert full_jitter(31, 0.5, base=tiny, cap=1e9) == tiny * 2.0**31 * 0.5
    assert full_jitter(10**9, 0.5, base=tiny, cap=1e9) == tiny * 2.0**31 * 0.5


def test_zero_base_or_cap_means_no_delay() -> None:
    assert full_jitter(5, 0.9, base=0.0, cap=10.0) == 0.0
    assert full_jitter(5, 0.9, base=1.0, cap=0.0) == 0.0


@pytest.mark.parametrize(
    ("attempt", "draw", "base", "cap", "message"),
    [
        (-1, 0.5, 1.0, 1.0, "attempt"),
        (0, -0.01, 1.0, 1.0, "draw"),
        (0, 1.0, 1.0, 1.0, "draw"),
        (0, 1.5, 1.0, 1.0, "draw"),
        (0, math.nan, 1.0, 1.0, "draw"),
        (0, 0.5, -1.0, 1.0, "base and cap"),
        (0, 0.5, 1.0, -0.1, "base and cap"),
    ],
)
def test_invalid_arguments_raise(attempt: int, draw: float, base: float, cap: float,
                                 message: str) -> None:
    with pytest.raises(ValueError, match=message):
        full_jitter(attempt, draw, base=base, cap=cap)


def test_distribution_spans_the_whole_window() -> None:
    rng = random.Random(1234)
    window = 0.2 * 2**4
    delays = [Backoff().delay(4, rng.random()) for _ in range(5000)]
    assert all(0.0 <= d < window for d in delays)
    assert min(delays) < 0.01 * window
    assert max(delays) > 0.99 * window
    assert abs(sum(delays) / len(delays) - window / 2) < 0.02 * window
    # Every tenth of the window is hit: a stampede spreads out instead of clustering.
    assert {int(d / window * 10) for d in delays} == set(range(10))


def test_backoff_defaults_and_delay() -> None:
    policy = Backoff()
    assert (policy.base, policy.cap) == (0.2, 20.0)
    assert policy.delay(0, 0.5) == 0.1
    assert policy.delay(100, 0.5) == 10.0
    assert Backoff(base=1.0, cap=2.0).delay(5, 0.5) == 1.0
    with pytest.raises(ValueError, match="attempt"):
        policy.delay(-1, 0.5)


def test_backoff_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Backoff().base = 1.0  # type: ignore[misc]
