"""S7: decode and validate one envelope, in one process, the two sides taking turns.

botkit's ``parse_envelope`` (the registry's discriminated union, bounded ids and texts, worded
errors) against bare pydantic on the same model (``ChatMessage.model_validate_json``), from
JSON text; and the same from an already decoded dict (how envelopes arrive in the runtime,
inside a decoded frame): ``parse_envelope(dict)`` against ``ChatMessage.model_validate``.
"""

from __future__ import annotations

import json
import statistics
import timeit
from typing import Any

from bench.common import envelope


def _per_call(fn: Any, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e6


def decode(rounds: int, number: int) -> dict[str, Any]:
    from botkit.envelope import ChatMessage, parse_envelope

    data = envelope(7)
    text = json.dumps(data, separators=(",", ":"))
    assert parse_envelope(text) == ChatMessage.model_validate_json(text)
    sides: dict[str, list[float]] = {"botkit_text": [], "pydantic_text": [],
                                     "botkit_dict": [], "pydantic_dict": []}
    for _ in range(rounds):
        sides["botkit_text"].append(_per_call(lambda: parse_envelope(text), number))
        sides["pydantic_text"].append(_per_call(lambda: ChatMessage.model_validate_json(text),
                                                number))
        sides["botkit_dict"].append(_per_call(lambda: parse_envelope(data), number))
        sides["pydantic_dict"].append(_per_call(lambda: ChatMessage.model_validate(data),
                                                number))
    return {"us": sides, "median_us": {k: statistics.median(v) for k, v in sides.items()},
            "bytes": len(text)}
