"""The cyclic GC's settings while the bots serve: a higher young-generation threshold.

CPython starts a collection of the young generation each time 700 more container objects were
made than freed. A busy bot keeps many young objects alive across a turn of the loop (decoded
publications in the read-ahead, queued envelopes, replies waiting for the outbox), so the count
keeps reaching 700 and collections run hundreds of times a minute: bench/ S1, 371 per 100,000
messages (centrifuge-python: 1); S13, ~100 per 60 s, up to 6 ms each. They free nothing:
``gc.DEBUG_SAVEALL`` found no cyclic garbage in a serving bot. Those objects are freed by their
reference counts, which the threshold does not touch; only garbage in reference cycles waits
for a collection, and with a threshold of 10,000 the young generation it can pile up in stays
small (10,000 objects, a few MiB at most).

So once the bots are loaded, before they connect, the runtime sets the young generation's
threshold to :data:`GEN0_THRESHOLD` (the older generations' are kept), and puts the previous
settings back when it stops. It leaves the settings alone when the process changed them before
(a plugin's or a wrapper's own ``gc.set_threshold`` or ``gc.disable()`` at import), or when the
environment variable ``BOTKIT_GC_GEN0`` says otherwise: ``0`` keeps Python's settings, a number
is the threshold.
"""

from __future__ import annotations

import gc
import logging
import os

__all__ = ["ENV", "GEN0_THRESHOLD", "GcPolicy"]

log = logging.getLogger("botkit.runtime")

GEN0_THRESHOLD = 10_000
"""The young generation's threshold while the bots serve (Python's default on 3.11: 700)."""
ENV = "BOTKIT_GC_GEN0"

_AT_IMPORT = gc.get_threshold()
"""The settings before any plugin was loaded: different ones at :meth:`GcPolicy.apply` were
chosen by the process."""


class GcPolicy:
    """Applies the serving threshold (:meth:`apply`) and restores the previous one
    (:meth:`restore`)."""

    __slots__ = ("_previous",)

    def __init__(self) -> None:
        self._previous: tuple[int, int, int] | None = None

    def apply(self) -> None:
        """Raise the young generation's threshold, unless told or set otherwise (logged)."""
        if self._previous is not None:
            return
        current = gc.get_threshold()
        wanted = _wanted()
        if wanted is None:
            log.info("cyclic GC: Python's thresholds %s kept (%s=0)", current, ENV)
            return
        if os.environ.get(ENV) is None and (current != _AT_IMPORT or not gc.isenabled()):
            log.info("cyclic GC: thresholds %s%s kept, as set by the process", current,
                     "" if gc.isenabled() else " (disabled)")
            return
        self._previous = current
        gc.set_threshold(wanted, *current[1:])
        log.info("cyclic GC: young-generation threshold %d -> %d while the bots serve "
                 "(%s=0 keeps Python's)", current[0], wanted, ENV)

    def restore(self) -> None:
        previous, self._previous = self._previous, None
        if previous is not None and gc.get_threshold()[0] == _wanted():
            gc.set_threshold(*previous)


def _wanted() -> int | None:
    text = os.environ.get(ENV, "").strip()
    if not text:
        return GEN0_THRESHOLD
    try:
        value = int(text)
    except ValueError:
        log.warning("%s=%r is not a whole number: %d used", ENV, text, GEN0_THRESHOLD)
        return GEN0_THRESHOLD
    return value if value > 0 else None
