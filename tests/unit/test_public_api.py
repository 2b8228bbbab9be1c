"""The public surface of ``botkit`` is pinned: adding or removing a name is a decision."""

from __future__ import annotations

import importlib

import botkit
from botkit.errors import BotkitError

PUBLIC = [
    "ApiAuthError",
    "ApiError",
    "ApiReplyError",
    "ApiRequestError",
    "ApiUnavailableError",
    "AskCancelled",
    "AskError",
    "AskInvalidAnswer",
    "AskTimeout",
    "Bot",
    "BotkitError",
    "ChatMessage",
    "ConfigError",
    "ConnectionClosedError",
    "Context",
    "Envelope",
    "EnvelopeError",
    "FailedReply",
    "Gap",
    "InvalidChannelError",
    "LocalServerError",
    "PluginError",
    "ProtocolError",
    "RealtimeError",
    "RealtimeTimeoutError",
    "ReplyDroppedError",
    "ReplyError",
    "SubscriptionError",
    "TerminalDisconnectError",
    "TokenError",
    "Typing",
    "UsageError",
    "UserJoined",
    "UserLeft",
    "__version__",
    "register_envelope",
]


def test_all_is_pinned() -> None:
    assert botkit.__all__ == PUBLIC


def test_every_public_name_is_importable() -> None:
    namespace: dict[str, object] = {}
    exec("from botkit import *", namespace)  # the star import is the test
    for name in PUBLIC:
        assert getattr(botkit, name) is not None
    assert set(PUBLIC) - {"__version__"} <= set(namespace)


def test_public_names_come_from_their_modules() -> None:
    from botkit.bot import Bot, UsageError
    from botkit.context import Context
    from botkit.envelope import register_envelope

    assert (botkit.Bot, botkit.UsageError, botkit.Context) == (Bot, UsageError, Context)
    assert botkit.register_envelope is register_envelope
    exceptions = importlib.import_module("botkit.errors")
    exported = [name for name in PUBLIC if name.endswith("Error") and name != "UsageError"]
    assert len(exported) == 21
    # ctx.ask's outcomes read as what happened, not as an "Error": still in the one tree.
    exported += ["AskCancelled", "AskInvalidAnswer", "AskTimeout"]
    for name in exported:
        assert getattr(botkit, name) is getattr(exceptions, name)
        assert issubclass(getattr(botkit, name), BotkitError)
    # UsageError is a handler's way to ask for the usage line, not a failure of botkit.
    assert not issubclass(botkit.UsageError, BotkitError)
    assert issubclass(botkit.AskTimeout, botkit.AskError)
    assert issubclass(botkit.AskTimeout, TimeoutError)
    assert issubclass(botkit.AskCancelled, botkit.AskError)
    from botkit.context import FailedReply
    assert botkit.FailedReply is FailedReply
    assert callable(botkit.Bot("x").on_reply_failed)
    assert isinstance(botkit.__version__, str)
    assert botkit.__version__.count(".") == 2
