"""Rates in bots.yaml (``room_rate: 5/s``): how many a second, or ``off``.

A rate is written as a count over a unit (``5/s``, ``30/m``, ``600/h``) or a plain number of
events a second; ``off`` (which YAML also reads as ``false``) turns the limit off. Like durations,
a rate has bounds, named in the error message, so a typo (``5000000/s``) is refused at load.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, WithJsonSchema

from botkit.config._errors import describe

__all__ = ["MAX_RATE", "RATE_JSON_SCHEMA", "Rate", "format_rate", "parse_rate"]

MAX_RATE = 100_000.0
"""Events a second, at most: beyond it no server keeps up, so a limit there means a typo."""

_RATE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*/\s*(s|m|h)")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE_HELP = "write a count per unit (5/s, 30/m, 600/h), a number per second, or off"


def parse_rate(value: object) -> float | None:
    """Events a second in ``value``, or None for ``off`` (or YAML's ``false``)."""
    if value is False or (isinstance(value, str) and value.strip().lower() == "off"):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(  # noqa: TRY004 - pydantic turns only ValueError into its error
            f"expected a rate, got {describe(value)}; {_RATE_HELP}")
    if isinstance(value, str):
        text = value.strip()
        match = _RATE.fullmatch(text)
        if match is not None:
            rate = float(match[1]) / _UNIT_SECONDS[match[2]]
        else:
            try:
                rate = float(text)
            except ValueError:
                raise ValueError(f"invalid rate {text!r:.60}; {_RATE_HELP}") from None
    else:
        rate = float(value)
    if not math.isfinite(rate) or rate <= 0 or rate > MAX_RATE:
        raise ValueError(f"a rate must be more than 0 and at most {MAX_RATE:g}/s; {_RATE_HELP}")
    return rate


def format_rate(rate: float | None) -> str:
    """``5.0`` -> ``5/s``, ``0.5`` -> ``30/m``, None -> ``off``: as a user would write it."""
    if rate is None:
        return "off"
    if rate >= 1:
        return f"{rate:g}/s"
    per_minute = rate * 60
    return f"{per_minute:g}/m" if per_minute >= 1 else f"{rate * 3600:g}/h"


RATE_JSON_SCHEMA: dict[str, object] = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "string",
         "pattern": r"^\s*(?:(?:\d+(?:\.\d*)?|\.\d+)\s*(?:/\s*[smh])?|[Oo][Ff][Ff])\s*$"
                    r"|\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}"},
        {"const": False},
    ],
}

Rate = Annotated[float | None, BeforeValidator(parse_rate), WithJsonSchema(RATE_JSON_SCHEMA)]
"""A rate in events a second, or None for no limit."""
