"""The ``dev:`` section of bots.yaml: the local hub of ``botkit dev`` and its chat backend.

::

    dev:
      port: 3001                          # the hub: chat page, realtime endpoint, APIs
      rate_limit: {messages: 5, per: 10s} # per sender, a sliding window
      blocked_words: [spam, scam]         # whole words or phrases, any letter case
      max_text_length: 1000               # characters per chat message
      client_publish: false               # true: the seed's prototype mode (see below)

By default room members can't publish into a room themselves: the chat page sends through the
moderated backend, which names the sender from the login token. ``client_publish: true`` lets
them publish directly, unmoderated and with any ``senderId`` they like (the page shows only
messages whose ``senderId`` matches the user the hub attests); use it only to prototype.

Every key is optional; the defaults give a usable local chat. Only ``botkit dev`` reads it.
"""

from __future__ import annotations

import unicodedata

from pydantic import (
    Field,
    StrictBool,
    StrictInt,
    field_validator,
)

from botkit.config._durations import RateLimitWindow
from botkit.config._errors import located
from botkit.config._section import Section

__all__ = [
    "DEFAULT_DEV_MAX_TEXT_LENGTH",
    "DEFAULT_DEV_PORT",
    "MAX_BLOCKED_WORD_LENGTH",
    "DevConfig",
    "RateLimitConfig",
]

DEFAULT_DEV_PORT = 3001
DEFAULT_DEV_MAX_TEXT_LENGTH = 1000
MAX_BLOCKED_WORD_LENGTH = 100
# Bots drop envelopes whose text is longer than their limits.max_text_length (4000 by default),
# so the chat must not accept messages they would never see.
_MAX_TEXT_LENGTH_LIMIT = 4000


class RateLimitConfig(Section):
    """At most ``messages`` chat messages per sender within any ``per`` seconds."""

    messages: StrictInt = Field(default=5, ge=1, description="a whole number of messages, e.g. 5")
    per: RateLimitWindow = Field(
        default=10.0, description="a duration, e.g. 10s")


class DevConfig(Section):
    """The local hub of ``botkit dev``: where it listens and how its chat backend moderates."""

    port: StrictInt = Field(default=DEFAULT_DEV_PORT, ge=1, le=65535,
                            description="a TCP port number, e.g. 3001")
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig,
                                        description="a mapping like {messages: 5, per: 10s}")
    blocked_words: list[str] = Field(default_factory=list,
                                     description="a list of words or phrases to refuse, "
                                                 "e.g. [spam, scam]")
    max_text_length: StrictInt = Field(default=DEFAULT_DEV_MAX_TEXT_LENGTH, ge=1,
                                       le=_MAX_TEXT_LENGTH_LIMIT,
                                       description="a whole number of characters, e.g. 1000")
    client_publish: StrictBool = Field(
        default=False, description="true or false: whether room members may publish directly, "
                                   "past moderation (the seed's prototype mode)")

    @field_validator("blocked_words")
    @classmethod
    def _check_blocked_words(cls, words: list[str]) -> list[str]:
        # Stored trimmed; matching is case-insensitive (see botkit.dev.hub.moderation), so two
        # entries that differ only in case are one entry written twice: refuse it like any
        # duplicate.
        first: dict[str, int] = {}
        cleaned: list[str] = []
        for index, word in enumerate(words):
            text = word.strip()
            if not text:
                raise located("expected a word or phrase, got an empty string", index)
            if len(text) > MAX_BLOCKED_WORD_LENGTH:
                raise located(f"is {len(text)} characters long; the limit is "
                              f"{MAX_BLOCKED_WORD_LENGTH}", index)
            if any(unicodedata.category(char).startswith("C") for char in text):
                raise located("contains a control character", index)
            key = unicodedata.normalize("NFKC", text).casefold()
            if key in first:
                raise located(f"{text!r} is already listed as blocked_words[{first[key]}]; "
                              "matching ignores letter case, so remove one", index)
            first[key] = index
            cleaned.append(text)
        return cleaned
