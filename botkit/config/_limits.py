"""The ``limits:`` section of a bot: the bounds of its handlers, lanes, connections and reply
outboxes, and their defaults."""

from __future__ import annotations

from pydantic import Field, StrictInt

from botkit.config._durations import HandlerTimeout, ReplyDeadline
from botkit.config._rate import Rate
from botkit.config._section import Section

__all__ = [
    "DEFAULT_HANDLER_TIMEOUT",
    "DEFAULT_LANE_QUEUE_SIZE",
    "DEFAULT_MAX_TEXT_LENGTH",
    "DEFAULT_OUTBOX_SIZE",
    "DEFAULT_REPLY_DEADLINE",
    "DEFAULT_ROOMS_PER_CONNECTION",
    "DEFAULT_ROOM_BURST",
    "DEFAULT_ROOM_RATE",
    "LimitsConfig",
]

DEFAULT_HANDLER_TIMEOUT = 10.0
DEFAULT_LANE_QUEUE_SIZE = 1000
DEFAULT_MAX_TEXT_LENGTH = 4000
DEFAULT_ROOMS_PER_CONNECTION = 128
# Flood control is generous by default: it is there to stop a runaway handler, not to shape
# ordinary traffic. Bots (and botkit's own tests and benchmarks) answer bursts of thousands in
# one room; a tight default would turn those into minutes of queued replies. A room that must be
# gentler says so (room_rate: 5/s, room_burst: 10).
DEFAULT_ROOM_RATE = 100.0
DEFAULT_ROOM_BURST = 200
DEFAULT_OUTBOX_SIZE = 1000
DEFAULT_REPLY_DEADLINE = 30.0


class LimitsConfig(Section):
    """Per-bot bounds; the defaults suit a chat bot that answers within seconds."""

    handler_timeout: HandlerTimeout = Field(default=DEFAULT_HANDLER_TIMEOUT,
                                      description="a duration, e.g. 10s")
    lane_queue_size: StrictInt = Field(default=DEFAULT_LANE_QUEUE_SIZE, ge=1,
                                       description="a whole number of messages, e.g. 1000")
    max_text_length: StrictInt = Field(default=DEFAULT_MAX_TEXT_LENGTH, ge=1,
                                       description="a whole number of characters, e.g. 4000")
    # Centrifugo's default client.channel_limit: a bot with more rooms opens more connections.
    rooms_per_connection: StrictInt = Field(default=DEFAULT_ROOMS_PER_CONNECTION, ge=1,
                                            description="a whole number of rooms, e.g. 128")
    # Flood control: per room, a token bucket on the bot's publishes (README "Replies").
    room_rate: Rate = Field(default=DEFAULT_ROOM_RATE,
                            description="a rate like 5/s or 30/m, or off")
    room_burst: StrictInt = Field(default=DEFAULT_ROOM_BURST, ge=1, le=100_000,
                                  description="a whole number of replies, e.g. 10")
    outbox_size: StrictInt = Field(default=DEFAULT_OUTBOX_SIZE, ge=1, le=1_000_000,
                                   description="a whole number of replies, e.g. 1000")
    reply_deadline: ReplyDeadline = Field(default=DEFAULT_REPLY_DEADLINE,
                                          description="a duration, e.g. 30s")

