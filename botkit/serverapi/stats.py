"""What the server API client sent and met, for logs, benchmarks and tests."""

from __future__ import annotations

from dataclasses import dataclass

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
