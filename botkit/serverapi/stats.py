"""What the server API client sent and met, for logs, benchmarks, tests and the ops endpoint."""

from __future__ import annotations

from dataclasses import dataclass, field

from botkit.timings import Timings

__all__ = ["ApiStats"]


@dataclass(slots=True)
class ApiStats:
    """Counters of what went over the wire. One instance is shared by the transport (requests,
    retries, malformed replies) and the ordered publisher (how publishes were sent)."""

    requests: int = 0            # HTTP requests attempted, retries included
    retries: int = 0             # attempts that repeated an earlier one
    publish_requests: int = 0    # queued publishes sent alone as a plain ``publish``
    publish_batches: int = 0     # ``batch`` requests carrying queued publishes
    batched_publishes: int = 0   # publishes sent inside those batches
    malformed_replies: int = 0   # answers (or replies inside a batch) that were not valid
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)
    """(method, outcome) → HTTP requests: ``ok``, ``error`` (the server refused or answered
    wrongly), ``unavailable`` (no answer, a transport error, HTTP 5xx) or ``cancelled``."""
    seconds: Timings = field(default_factory=Timings)
    """Method → how long its HTTP requests took, whatever their outcome."""

    def request_done(self, method: str, outcome: str, seconds: float) -> None:
        key = (method, outcome)
        self.outcomes[key] = self.outcomes.get(key, 0) + 1
        self.seconds.observe(method, seconds)
