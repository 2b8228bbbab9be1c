"""ULIDs: the ids of envelopes.

A ULID is 128 bits written as 26 characters of Crockford's base32: a 48-bit Unix time in
milliseconds followed by 80 random bits (https://github.com/ulid/spec). Ids made in one process
sort in the order they were made, because within one millisecond the random part is incremented
instead of drawn again (the spec's "monotonic" mode). Written here rather than taken from a
dependency: it is short and sits on the reply path.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta

from botkit.errors import EnvelopeError

__all__ = ["ULID_LENGTH", "is_ulid", "new_ulid", "ulid_timestamp"]

ULID_LENGTH = 26

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALID_CHARS = _CROCKFORD + _CROCKFORD.lower()
# Encoding two characters (10 bits) per lookup halves the Python-level loop; 1024 short strings.
_PAIRS = tuple(first + second for first in _CROCKFORD for second in _CROCKFORD)
# 26 characters hold 130 bits: the 128-bit value behind two zero bits, read 10 bits at a time.
_PAIR_SHIFTS = tuple(range(120, -1, -10))
# int(s, 32) reads the digits 0-9a-v; Crockford's alphabet is the same 32 symbols in the same
# order, so decoding is a translation to those digits plus int().
_CROCKFORD_TO_INT_DIGITS = str.maketrans(_VALID_CHARS, "0123456789abcdefghijklmnopqrstuv" * 2)

_RANDOM_BITS = 80
_RANDOM_LIMIT = 1 << _RANDOM_BITS
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _MonotonicState:
    """The last timestamp and random part handed out, behind one lock."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        # A new lock too: after a fork, another thread of the parent may have held the old one.
        self.lock = threading.Lock()
        self.millis = -1
        self.random = 0

    def next_value(self) -> int:
        """The next ULID as a 128-bit integer, greater than every earlier one."""
        now = time.time_ns() // 1_000_000
        with self.lock:
            if now > self.millis:
                self.millis = now
                self.random = int.from_bytes(os.urandom(10))
            else:
                # Same millisecond, or the clock stepped back: keep the last timestamp and
                # increment, so ids never go backwards within the process.
                self.random += 1
                if self.random == _RANDOM_LIMIT:
                    # 2**80 ids in one millisecond can't happen in practice; borrowing the next
                    # millisecond keeps the order instead of failing as the spec would.
                    self.millis += 1
                    self.random = int.from_bytes(os.urandom(10))
            return (self.millis << _RANDOM_BITS) | self.random


_state = _MonotonicState()
# A forked child would otherwise continue the parent's sequence and hand out the same ids.
os.register_at_fork(after_in_child=_state.reset)


def _encode(value: int) -> str:
    return "".join([_PAIRS[(value >> shift) & 0x3FF] for shift in _PAIR_SHIFTS])


def new_ulid() -> str:
    """A new ULID, e.g. ``01HZX3Q8W2J5K7M9N1P3R5T7V9``; later calls return greater ids."""
    return _encode(_state.next_value())


def is_ulid(value: object) -> bool:
    """Whether ``value`` is a ULID: 26 Crockford base32 characters (either case) within 128 bits."""
    return (
        isinstance(value, str)
        and len(value) == ULID_LENGTH
        # A first character above 7 would need more than 128 bits.
        and value[0] in "01234567"
        and not value.strip(_VALID_CHARS)
    )


def ulid_timestamp(ulid: str) -> datetime:
    """The moment (UTC, millisecond precision) encoded in the first ten characters of ``ulid``."""
    if not is_ulid(ulid):
        preview = repr(ulid[:40]) if isinstance(ulid, str) else type(ulid).__name__
        raise EnvelopeError(f"not a ULID: {preview}")
    millis = int(ulid[:10].translate(_CROCKFORD_TO_INT_DIGITS), 32)
    try:
        # Integer milliseconds through timedelta, not float seconds, so no rounding creeps in.
        return _EPOCH + timedelta(milliseconds=millis)
    except OverflowError:
        raise EnvelopeError(f"the time of ULID {ulid!r} is after the year 9999") from None
