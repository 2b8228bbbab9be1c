"""The one exception tree of botkit.

Every error botkit raises derives from :class:`BotkitError`; errors of the libraries underneath
(websockets, httpx, pyjwt, pydantic, PyYAML) are translated where they cross into botkit and
chained with ``from`` so the original cause stays visible::

    BotkitError
    ├── ConfigError                 bots.yaml is wrong (file, line, field, a suggested fix)
    ├── PluginError                 a plugin can't be imported or a handler can't be served
    │   └── PluginLoadError         ... a plugin of bots.yaml, located there (also ConfigError)
    ├── InvalidChannelError         a room id or channel name is not acceptable (also ValueError)
    ├── TokenError                  a token can't be minted (no key, bad claims)
    ├── ProtocolError               the server sent frames that break the client protocol
    ├── RealtimeError               the realtime connection failed
    │   ├── ConnectionClosedError   the connection is closed (by us, or for good by the server)
    │   ├── TerminalDisconnectError the server refused us for good (invalid token, bad request, ...)
    │   ├── ReplyError              the server answered a command with an error code
    │   │   └── SubscriptionError   a subscription was refused or ended by the server
    │   └── RealtimeTimeoutError    the server did not answer within the timeout (also TimeoutError)
    ├── ApiError                    the server API failed
    │   ├── ApiAuthError            the API key was refused (names the setting, never the value)
    │   ├── ApiRequestError         the API refused the request (4xx, bad body); never retried
    │   ├── ApiReplyError           the API answered with a Centrifugo error code
    │   │   └── ApiMalformedReplyError  ... or with something that is not a valid reply
    │   └── ApiUnavailableError     transport errors or 5xx, still failing after the retries
    ├── EnvelopeError               an envelope is invalid (not JSON, wrong fields, too long)
    ├── AskError                    ``ctx.ask`` can't ask (no person, too many pending questions)
    │   ├── AskTimeout              the person did not answer in time (also TimeoutError)
    │   ├── AskCancelled            the person answered /cancel
    │   └── AskInvalidAnswer        the answer was not one of the choices, twice
    ├── ReplyDroppedError           a non-essential reply was dropped by flood control
    ├── StateError                  the state store failed (bad key or value, unusable file)
    │   ├── StateTimeoutError       the state file stayed locked or silent past the timeout
    │   ├── StateInUseError         another process runs on the state file (names its pid)
    │   └── StateFileError          the state file can't be opened or written (corrupt,
    │                               read-only): a setup problem, found at start
    └── LocalServerError            the local development server can't be built or started
"""

from __future__ import annotations

__all__ = [
    "ApiAuthError",
    "ApiError",
    "ApiMalformedReplyError",
    "ApiReplyError",
    "ApiRequestError",
    "ApiUnavailableError",
    "AskCancelled",
    "AskError",
    "AskInvalidAnswer",
    "AskTimeout",
    "BotkitError",
    "ConfigError",
    "ConnectionClosedError",
    "EnvelopeError",
    "InvalidChannelError",
    "LocalServerError",
    "PluginError",
    "PluginLoadError",
    "ProtocolError",
    "RealtimeError",
    "RealtimeTimeoutError",
    "ReplyDroppedError",
    "ReplyError",
    "StateError",
    "StateFileError",
    "StateInUseError",
    "StateTimeoutError",
    "SubscriptionError",
    "TerminalDisconnectError",
    "TokenError",
]


class BotkitError(Exception):
    """Root of every error botkit raises."""


class ConfigError(BotkitError):
    """The configuration is invalid. ``str()`` is a located, user-facing message."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.path = path
        self.line = line
        self.field = field
        location = ""
        if path is not None:
            location = f"{path}:{line}: " if line is not None else f"{path}: "
        if field:
            location += f"{field}: "
        super().__init__(f"{location}{message}")


class PluginError(BotkitError):
    """A plugin can't be loaded, or one of its handlers can't be served."""


class PluginLoadError(ConfigError, PluginError):
    """The plugin a bot of bots.yaml names failed to import; ``str()`` is located at its
    ``plugin:`` line. Both a ConfigError and a PluginError: the file names what can't load."""


class InvalidChannelError(BotkitError, ValueError):
    """A room id or channel name is not acceptable."""


class TokenError(BotkitError):
    """A token can't be minted."""


class ProtocolError(BotkitError):
    """The server sent something that is not valid client protocol."""


class RealtimeError(BotkitError):
    """The realtime connection failed."""


class ConnectionClosedError(RealtimeError):
    """The connection is closed: an operation can't be carried out any more."""


class TerminalDisconnectError(RealtimeError):
    """The server closed the connection with a code that forbids reconnecting."""

    def __init__(self, code: int, reason: str, hint: str = "") -> None:
        self.code = code
        self.reason = reason
        message = f"server disconnected with code {code} ({reason or 'no reason'})"
        if hint:
            message += f": {hint}"
        super().__init__(message)


class _ErrorReply(Exception):
    """The fields of an error object the server answered with: the same on the client protocol
    (:class:`ReplyError`) and the server API (:class:`ApiReplyError`). A mixin, not a branch of
    the tree: each of the two sits under its own layer's error."""

    def __init__(self, code: int, message: str, temporary: bool = False, *,
                 method: str = "") -> None:
        self.code = code
        self.message = message
        self.temporary = temporary
        self.method = method
        where = f"{method}: " if method else ""
        super().__init__(f"{where}error {code} ({message})")


class ReplyError(_ErrorReply, RealtimeError):
    """The server answered a command with an error."""


class SubscriptionError(ReplyError):
    """A subscription was refused or ended by the server."""

    def __init__(self, channel: str, code: int, message: str, temporary: bool = False) -> None:
        self.channel = channel
        super().__init__(code, message, temporary, method=f"subscribe {channel}")


class RealtimeTimeoutError(RealtimeError, TimeoutError):
    """The server did not answer in time."""


class ApiError(BotkitError):
    """The server API failed."""


class ApiAuthError(ApiError):
    """The server API refused the key. The message names the setting, never the key."""


class ApiRequestError(ApiError):
    """The server API refused the request itself (HTTP 4xx); retrying would not help."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        self.status_code = status_code
        super().__init__(message)


class ApiReplyError(_ErrorReply, ApiError):
    """The server API answered with a Centrifugo error object."""


class ApiMalformedReplyError(ApiReplyError):
    """The server API answered with something that is not a valid reply: a body that is not
    JSON, a field of the wrong type, too few replies in a batch. ``temporary`` is true: a
    proxy or a server being replaced may answer like this once, and every server API call is
    safe to repeat (publishes carry an idempotency key), so it is retried like a temporary
    error; if it persists, it is raised as itself, naming the method."""

    def __init__(self, reason: str, *, method: str = "") -> None:
        super().__init__(0, f"malformed reply: {reason}", True, method=method)
        self.reason = reason
        where = f"{method}: " if method else ""
        self.args = (f"{where}malformed reply: {reason}",)


class ApiUnavailableError(ApiError):
    """The server API could not be reached or kept failing (transport errors, 5xx)."""


class EnvelopeError(BotkitError):
    """An envelope is invalid: not a JSON object, missing or mistyped fields, too long."""


class AskError(BotkitError):
    """``ctx.ask`` can't ask: outside a person's message, a second question to the same person
    in the same room, more pending questions than the bot allows, or a handler that was not
    run as a conversation (the message says which)."""


class AskTimeout(AskError, TimeoutError):
    """The person did not answer ``ctx.ask`` within its ``timeout``."""


class AskCancelled(AskError):
    """The person answered ``ctx.ask`` with ``/cancel``."""


class AskInvalidAnswer(AskError):
    """The answer was not one of ``choices``, and neither was the answer to the re-ask.
    ``answer`` is the second answer (a ChatMessage)."""

    def __init__(self, message: str, answer: object) -> None:
        self.answer = answer
        super().__init__(message)


class StateError(BotkitError):
    """The state store failed: a key or value it can't store, or a file it can't use (the
    message names the file; the cause is chained)."""


class StateTimeoutError(StateError, TimeoutError):
    """The state file did not answer within the timeout, most often because another connection
    held its write lock. The message names the file."""


class StateInUseError(StateError):
    """Another process holds the state file's lock: two processes on one file would each fire
    the stored jobs and count twice. The message names the file and the other process's pid."""

    def __init__(self, path: str, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        holder = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"state file {path} is in use by another botkit process ({holder}); "
                         "stop it, or give this process its own state.path")


class StateFileError(StateError):
    """The state file can't be opened or written: not a database (corrupt), read-only, or in
    a folder that can't be written. Found when the store opens, before any bot starts; the
    message names the file and the cause."""


class LocalServerError(BotkitError):
    """The local development server (Centrifugo) can't be built or started."""


class ReplyDroppedError(BotkitError):
    """A reply sent with ``essential=False`` was dropped unsent: its room's outbox was full
    (flood control keeps the essential replies and drops the oldest non-essential ones)."""
