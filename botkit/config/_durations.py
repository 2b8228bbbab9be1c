"""Durations in bots.yaml and on the command line: one parser, and the bounds of each setting.

Every duration has a floor and a ceiling. Without them a typo is accepted and does harm: ``every:
1ms`` posted thousands of times a second, ``token_ttl: 999999999h`` minted tokens that outlive any
key rotation, ``handler_timeout: 99999999999h`` let a stuck handler hold its lane forever. A bound
is part of the error message, so the operator sees what would have been accepted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from botkit.config._errors import describe

__all__ = [
    "DURATION_JSON_SCHEMA",
    "EVERY",
    "HANDLER_TIMEOUT",
    "LEASE_TTL",
    "MAX_AGE",
    "RATE_LIMIT_WINDOW",
    "REPLY_DEADLINE",
    "TOKEN_TTL",
    "Bounds",
    "Every",
    "HandlerTimeout",
    "LeaseTtl",
    "MaxAge",
    "RateLimitWindow",
    "ReplyDeadline",
    "TokenTtl",
    "format_duration",
    "parse_duration",
]

_DURATION = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ms|s|m|h))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_HELP = ("write a number of seconds (30) or a number with a unit: "
                  "500ms, 30s, 15m, 1h, 1h30m")


def parse_duration(value: object) -> float:
    """Seconds in ``value``: a number of seconds, or text like ``"500ms"``, ``"30s"``, ``"15m"``,
    ``"1h"``, ``"1h30m"``. Raises ValueError (with the accepted forms) for anything else.

    The one duration parser of bots.yaml and of the ``botkit`` command's options."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        # ValueError, not TypeError: pydantic turns only ValueError into a validation error.
        raise ValueError(  # noqa: TRY004
            f"expected a duration, got {describe(value)}; {_DURATION_HELP}")
    seconds = _duration_seconds(value.strip()) if isinstance(value, str) else float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be a finite number of seconds >= 0; {_DURATION_HELP}")
    return seconds


def _duration_seconds(text: str) -> float:
    try:
        return float(text)  # a plain number in a string: seconds
    except ValueError:
        pass
    if not _DURATION.fullmatch(text):
        raise ValueError(f"invalid duration {text!r:.60}; {_DURATION_HELP}")
    return sum(float(number) * _UNIT_SECONDS[unit]
               for number, unit in _DURATION_PART.findall(text))


def format_duration(seconds: float) -> str:
    """``0.01`` -> ``10ms``, ``60`` -> ``1m``, ``86400`` -> ``24h``: as a user would write it."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class Bounds:
    """The durations a setting accepts, ``minimum`` and ``maximum`` included."""

    minimum: float
    maximum: float
    why: str = ""

    def check(self, seconds: float) -> float:
        """``seconds`` if within the bounds, else ValueError saying which values are."""
        if not self.minimum <= seconds <= self.maximum:
            why = f" ({self.why})" if self.why else ""
            raise ValueError(f"must be between {format_duration(self.minimum)} and "
                             f"{format_duration(self.maximum)}{why}")
        return seconds

    def parse(self, value: object) -> float:
        return self.check(parse_duration(value))


TOKEN_TTL = Bounds(60.0, 24 * 3600.0, "tokens are refreshed before they expire; a long one "
                                      "stays valid long after a key is rotated")
HANDLER_TIMEOUT = Bounds(0.01, 3600.0, "a handler holds its room's lane while it runs")
EVERY = Bounds(1.0, 365 * 24 * 3600.0, "each interval posts a message; use cron: for "
                                       "calendar times")
RATE_LIMIT_WINDOW = Bounds(0.1, 24 * 3600.0)
MAX_AGE = Bounds(1.0, 7 * 24 * 3600.0, "older envelopes are skipped at catch-up; a server "
                                       "rarely keeps history longer")
REPLY_DEADLINE = Bounds(1.0, 3600.0, "a reply still unsent after it is reported as failed; "
                                    "a late answer is rarely worth more")
LEASE_TTL = Bounds(1.0, 60.0, "a replica that dies holds its rooms this long; renewals go out "
                              "several times per lease")


# What `botkit schema` says a duration is: a number of seconds, a duration string, or a ${VAR}
# reference (expanded before validation, so its value is checked only then). The bounds stay
# out of the schema: they are the loader's job, and its message names them.
_ENV_REFERENCE = r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}"
DURATION_JSON_SCHEMA: dict[str, object] = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "string",
         "pattern": (r"^\s*(?:(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ms|s|m|h))+|\d+(?:\.\d*)?|\.\d+)\s*$"
                     f"|{_ENV_REFERENCE}")},
    ],
}


def _bounded(bounds: Bounds) -> AfterValidator:
    return AfterValidator(bounds.check)


# Zero keeps pydantic's own "must be greater than 0"; anything else outside gets the bounds.
_Parsed = Annotated[float, BeforeValidator(parse_duration), Field(gt=0),
                    WithJsonSchema(DURATION_JSON_SCHEMA)]
TokenTtl = Annotated[_Parsed, _bounded(TOKEN_TTL)]
HandlerTimeout = Annotated[_Parsed, _bounded(HANDLER_TIMEOUT)]
Every = Annotated[_Parsed, _bounded(EVERY)]
RateLimitWindow = Annotated[_Parsed, _bounded(RATE_LIMIT_WINDOW)]
MaxAge = Annotated[_Parsed, _bounded(MAX_AGE)]
LeaseTtl = Annotated[_Parsed, _bounded(LEASE_TTL)]
ReplyDeadline = Annotated[_Parsed, _bounded(REPLY_DEADLINE)]
