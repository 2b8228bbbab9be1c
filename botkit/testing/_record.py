"""What a bot under test did: what it published since the start (or a mark), its counters and
state, and the assertions on its replies. :class:`~botkit.testing.BotHarness` is one."""

from __future__ import annotations

import re

from botkit.runtime.core import BotCore, BotStats
from botkit.state.store import BotState
from botkit.testing._server import HarnessServer, Published

__all__ = ["HarnessRecord"]


class HarnessRecord:
    """The reading side of :class:`~botkit.testing.BotHarness` (its ``_setup`` sets these)."""

    name: str
    server: HarnessServer
    core: BotCore
    _mark: int

    @property
    def state(self) -> BotState:
        """The bot's state (``ctx.state``), in memory; usable once started."""
        assert self.core.services.state is not None
        return self.core.services.state

    @property
    def stats(self) -> BotStats:
        """The runtime's counters: handled, invalid, spoofed, own, handler errors, jobs..."""
        return self.core.stats

    @property
    def published(self) -> list[Published]:
        """Every envelope the bot published since the start (or :meth:`clear`)."""
        return self.server.published[self._mark:]

    @property
    def replies(self) -> list[Published]:
        """The chat messages among :attr:`published`."""
        return [item for item in self.published if item.text is not None]

    @property
    def texts(self) -> list[str]:
        """The texts of :attr:`replies`."""
        return [item.text for item in self.replies if item.text is not None]

    @property
    def last_reply(self) -> Published:
        """The latest chat message the bot published; AssertionError if there is none."""
        if not self.replies:
            raise AssertionError(f"bot {self.name} has not replied{self._errors_note()}")
        return self.replies[-1]

    def clear(self) -> None:
        """Forget what was published so far (the counters stay)."""
        self._mark = len(self.server.published)

    def assert_replied(self, expected: str | re.Pattern[str], *, room: str | None = None,
                       reply_to: str | None = None) -> Published:
        """The reply whose text is ``expected`` (or matches the pattern), in ``room`` and
        answering ``reply_to`` if given; AssertionError listing the replies otherwise."""
        for item in self.replies:
            assert item.text is not None
            if isinstance(expected, re.Pattern):
                found = expected.search(item.text) is not None
            else:
                found = item.text == expected
            if found and room in (None, item.room) and reply_to in (None, item.reply_to):
                return item
        where = "".join([f" in {room}" if room else "",
                         f" answering {reply_to}" if reply_to else ""])
        said = "\n".join(f"  {item.room}: {item.text!r}" for item in self.replies) or "  nothing"
        raise AssertionError(f"bot {self.name} did not reply {expected!r}{where}; it said:\n"
                             f"{said}{self._errors_note()}")

    def assert_no_reply(self) -> None:
        """AssertionError if the bot replied since the start (or :meth:`clear`)."""
        if self.replies:
            raise AssertionError(f"bot {self.name} replied {self.texts!r}")

    def _errors_note(self) -> str:
        stats = self.stats
        errors, timeouts = stats.handler_errors + stats.job_errors, stats.handler_timeouts
        if not errors and not timeouts:
            return ""
        return (f"\n(its handlers and jobs failed {errors} time(s) and timed out {timeouts} "
                "time(s): see the captured log)")
