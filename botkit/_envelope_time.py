"""Timestamps as envelopes carry them: UTC, millisecond precision, ISO 8601 with ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime

from botkit._envelope_wording import field_error, kind, preview
from botkit.errors import EnvelopeError

__all__ = ["as_utc", "format_timestamp", "sent_at_from", "utc_now"]

# An ISO 8601 date-time with offset and nanoseconds is 35 characters; anything much longer is not
# worth handing to the parser.
_MAX_TIMESTAMP_LENGTH = 64


def utc_now() -> datetime:
    """The current time in UTC, truncated to the millisecond the wire format carries (so an
    envelope built now equals itself after a round trip through JSON)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def format_timestamp(dt: datetime) -> str:
    """``dt`` as the wire writes it: UTC, milliseconds, ``Z`` (``2026-03-24T12:00:00.000Z``)."""
    try:
        utc = as_utc(dt)
    except ValueError as exc:
        raise EnvelopeError(f"can't format {dt!r}: it {exc}") from None
    # isoformat pads the year to four digits, which strftime("%Y") does not on every platform.
    return utc.isoformat(timespec="milliseconds")[:-6] + "Z"


def as_utc(dt: datetime) -> datetime:
    """``dt`` in UTC at millisecond precision; ValueError when naive or out of range."""
    if dt.utcoffset() is None:
        raise ValueError("has no timezone; add one, e.g. 'Z' or '+02:00'")
    if dt.tzinfo is not UTC:
        try:
            dt = dt.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of range in UTC") from None
    if dt.microsecond % 1000:
        dt = dt.replace(microsecond=dt.microsecond // 1000 * 1000)
    return dt


def sent_at_from(value: object) -> datetime:
    # Only ISO 8601 strings (and datetimes, for envelopes built in Python): pydantic would also
    # take numbers as Unix time in seconds or milliseconds, a guess we would rather not make.
    if isinstance(value, str):
        if len(value) > _MAX_TIMESTAMP_LENGTH:
            raise field_error(f"is {len(value)} characters, too long for a date-time")
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise field_error(f"is not an ISO 8601 date-time: {preview(value)}") from None
        if value.tzinfo is UTC and not value.microsecond % 1000:
            return value  # what the wire carries, and what as_utc() would return as it is
    elif not isinstance(value, datetime):
        raise field_error(f"must be an ISO 8601 date-time string, not {kind(value)}")
    try:
        return as_utc(value)
    except ValueError as exc:
        raise field_error(str(exc)) from None
