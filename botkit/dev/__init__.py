"""Development tooling, never imported by the runtime: the embedded hub (``hub``), ``botkit dev``
(``command``) and local server processes for tests and benchmarks (``localserver``)."""

from __future__ import annotations

__all__: list[str] = []
