"""Room envelopes: the JSON objects that travel through rooms, as frozen pydantic models.

Every message in a room is one envelope::

    {"type": "chat.message", "id": "01HZX...", "roomId": "room_abc123",
     "senderId": "user_01H...", "text": "hello", "sentAt": "2026-03-24T12:00:00.000Z"}

Attributes are snake_case, the wire is camelCase; both spellings are accepted. The ``type`` picks
the model through a registry that plugins extend with :func:`register_envelope`; a type nobody
registered still parses, as a plain :class:`Envelope` that keeps its other fields in
``model_extra``. The registry also knows which types a room member may publish themselves
(``client_safe``, see docs/security.md): by default only ``chat.message`` and ``typing``.

Envelopes come from other users, so :func:`parse_envelope` treats its input as hostile: ids and
texts are bounded, and every failure is one :class:`EnvelopeError` whose message names the field
and quotes at most a short preview of the value.

The timestamp helpers live in :mod:`botkit._envelope_time` and the error wording in
:mod:`botkit._envelope_wording`; ``utc_now`` and ``format_timestamp`` are re-exported here.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin, overload

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_serializer,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import from_json

from botkit._envelope_time import format_timestamp, utc_now
from botkit._envelope_time import sent_at_from as _sent_at_from
from botkit._envelope_wording import kind as _kind
from botkit._envelope_wording import not_an_object as _not_an_object
from botkit._envelope_wording import reason as _reason
from botkit._envelope_wording import truncate as _truncate
from botkit.errors import EnvelopeError
from botkit.ulid import new_ulid

__all__ = [
    "DEFAULT_MAX_TEXT_LENGTH",
    "MAX_ID_LENGTH",
    "ChatMessage",
    "Envelope",
    "Typing",
    "UserJoined",
    "UserLeft",
    "chat_message",
    "envelope_to_dict",
    "envelope_type_for",
    "format_timestamp",
    "is_client_safe",
    "parse_envelope",
    "register_envelope",
    "utc_now",
]

MAX_ID_LENGTH = 128
"""Longest accepted id (also type name, room id, user id): ids come from other users."""

DEFAULT_MAX_TEXT_LENGTH = 4000
"""Longest accepted ``text`` unless :func:`parse_envelope` is told otherwise."""

_Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
# A tuple, not `str | bytes | bytearray`: that expression would build a union on every call.
_JSON_TEXT_TYPES = (str, bytes, bytearray)


# --- models ---------------------------------------------------------------------------------

class Envelope(BaseModel):
    """Any envelope. Fields beyond the five common ones are kept in ``model_extra``."""

    model_config = ConfigDict(
        frozen=True,
        extra="allow",
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
    )

    type: _Id
    id: _Id
    room_id: _Id
    sender_id: _Id
    sent_at: datetime

    @field_validator("sent_at", mode="plain")
    @classmethod
    def _utc_sent_at(cls, value: object) -> datetime:
        return _sent_at_from(value)

    @field_serializer("sent_at", when_used="json")
    def _format_sent_at(self, value: datetime) -> str:
        return format_timestamp(value)


def _sender_of(data: dict[str, Any]) -> Any:
    # pydantic passes the fields validated so far; sender_id comes before user_id.
    return data["sender_id"]


class ChatMessage(Envelope):
    type: Literal["chat.message"] = "chat.message"
    text: str
    reply_to: _Id | None = None


class UserJoined(Envelope):
    """Someone entered the room; the runtime also makes these from presence joins."""

    type: Literal["user.joined"] = "user.joined"
    user_id: _Id = Field(default_factory=_sender_of)
    name: str | None = None


class UserLeft(Envelope):
    """Someone left the room; the runtime also makes these from presence leaves."""

    type: Literal["user.left"] = "user.left"
    user_id: _Id = Field(default_factory=_sender_of)
    name: str | None = None


class Typing(Envelope):
    type: Literal["typing"] = "typing"
    # Strict: lax pydantic would read "false", "off" or 0 as False; the wire has true/false.
    is_typing: bool = Field(default=True, strict=True)


# --- registry -------------------------------------------------------------------------------

class _Registry:
    """Envelope models by type name, with their validators looked up once, not per envelope."""

    def __init__(self, models: dict[str, type[Envelope]] | None = None,
                 client_safe: set[str] | None = None) -> None:
        self.models: dict[str, type[Envelope]] = dict(models or {})
        self.client_safe: set[str] = set(client_safe or ())
        """Types a room member's own connection may publish (see :func:`is_client_safe`)."""
        self.validators: dict[str, Callable[[object], Envelope]] = {
            name: model.__pydantic_validator__.validate_python
            for name, model in self.models.items()}
        self.validate_json = self._json_validator()

    def add(self, names: tuple[str, ...], model: type[Envelope], *,
            client_safe: bool = False) -> None:
        for name in names:
            self.models[name] = model
            self.validators[name] = model.__pydantic_validator__.validate_python
            if client_safe:
                self.client_safe.add(name)
        self.validate_json = self._json_validator()

    def copy(self) -> _Registry:
        return _Registry(self.models, self.client_safe)

    def _json_validator(self) -> Callable[[str | bytes | bytearray], Envelope]:
        # One validator for JSON text: pydantic reads "type" and picks the registered model
        # itself, or else takes the generic Envelope. Decoding to a dict first and then
        # validating it would cost about twice as much. An invalid envelope of a registered
        # type may still come out as a valid generic Envelope; _parse_json_text checks that.
        validate: Callable[[str | bytes | bytearray], Envelope]
        models = tuple(dict.fromkeys(self.models.values()))
        if not models:
            validate = Envelope.__pydantic_validator__.validate_json
            return validate
        # Built as a type, not from the models' core schemas: pydantic then merges the nested
        # models' definitions, which plain schema surgery would duplicate.
        known: Any = functools.reduce(operator.or_, models)
        tagged: Any = Annotated[known, Field(discriminator="type")]
        adapter: TypeAdapter[Envelope] = TypeAdapter(
            Annotated[tagged | Envelope, Field(union_mode="left_to_right")])
        validate = adapter.validator.validate_json
        return validate


_registry = _Registry()
_validate_generic: Callable[[object], Envelope] = Envelope.__pydantic_validator__.validate_python

_EnvelopeT = TypeVar("_EnvelopeT", bound=Envelope)


@overload
def register_envelope(model: type[_EnvelopeT], *, client_safe: bool = False
                      ) -> type[_EnvelopeT]: ...


@overload
def register_envelope(model: None = None, *, client_safe: bool = False
                      ) -> Callable[[type[_EnvelopeT]], type[_EnvelopeT]]: ...


def register_envelope(model: type[_EnvelopeT] | None = None, *, client_safe: bool = False
                      ) -> type[_EnvelopeT] | Callable[[type[_EnvelopeT]], type[_EnvelopeT]]:
    """Make ``parse_envelope`` use ``model`` for the type(s) in its ``type: Literal[...]``.

    Usable as a class decorator, bare or as ``@register_envelope(client_safe=True)``. A type
    already registered is refused, not replaced: two plugins silently fighting over one type
    would be worse than an error at import time.

    ``client_safe``: a room member may publish this type from their own connection (as
    ``chat.message`` and ``typing``). Without it, the runtime takes the type only when it was
    published through the server API (or by a ``trusted_senders`` user of the bot): any member
    can write any JSON into a room they may publish in, and only the ``senderId`` of it is
    checked by the server. Say ``client_safe=True`` only for a type whose every field a member
    may choose freely, like a reaction emoji; never for one a game server or backend vouches for.
    """
    if model is None:
        def register(model: type[_EnvelopeT]) -> type[_EnvelopeT]:
            return register_envelope(model, client_safe=client_safe)
        return register
    names = _literal_type_names(model)
    for name in names:
        if name in _registry.models:
            owner = _registry.models[name]
            raise EnvelopeError(f"envelope type {name!r} is already registered by "
                                f"{owner.__module__}.{owner.__qualname__}")
    if not model.__pydantic_complete__:
        try:
            model.model_rebuild()
        except Exception as exc:  # pydantic raises several kinds here; all mean "incomplete"
            raise EnvelopeError(f"{model.__qualname__} is not a complete model: {exc}") from exc
    _registry.add(names, model, client_safe=client_safe)
    return model


def is_client_safe(type_name: str) -> bool:
    """Whether a room member may publish envelopes of ``type_name`` from their own connection
    (``chat.message``, ``typing``, and types registered with ``client_safe=True``)."""
    return type_name in _registry.client_safe


def _literal_type_names(model: object) -> tuple[str, ...]:
    if not (isinstance(model, type) and issubclass(model, Envelope)):
        raise EnvelopeError(f"only Envelope subclasses can be registered, not {model!r}")
    annotation = model.model_fields["type"].annotation
    names = get_args(annotation) if get_origin(annotation) is Literal else ()
    if not names or not all(isinstance(n, str) and 0 < len(n) <= MAX_ID_LENGTH for n in names):
        raise EnvelopeError(
            f"{model.__qualname__} must declare its type as a Literal of non-empty strings, "
            "e.g. type: Literal['match.started'] = 'match.started'")
    return names


def envelope_type_for(type_name: str) -> type[Envelope]:
    """The model registered for ``type_name``, or :class:`Envelope` when there is none."""
    return _registry.models.get(type_name, Envelope)


# What people type is theirs to publish; who joined or left is the server's to say (the runtime
# makes user.joined/user.left from presence itself).
for _builtin, _client_safe in ((ChatMessage, True), (UserJoined, False), (UserLeft, False),
                               (Typing, True)):
    register_envelope(_builtin, client_safe=_client_safe)


# --- parsing --------------------------------------------------------------------------------

def parse_envelope(data: object, *, max_text_length: int = DEFAULT_MAX_TEXT_LENGTH) -> Envelope:
    """Validate one envelope: a decoded JSON object (dict) or JSON text (str or bytes).

    Returns the model registered for its ``type`` (:class:`Envelope` for unknown types). Raises
    :class:`EnvelopeError`, and nothing else, when the input is not an acceptable envelope or its
    ``text`` is longer than ``max_text_length`` characters.
    """
    if isinstance(data, dict):
        envelope = _parse_object(data)
    elif isinstance(data, _JSON_TEXT_TYPES):
        envelope = _parse_json_text(data)
    else:
        raise _not_an_object(data)
    # The text's length, read directly: a declared field lives in __dict__, an undeclared one
    # in the extras; pydantic's __getattr__ would raise and catch for envelopes without text.
    # Inline rather than a function of its own: this runs for every envelope (bench/ S1).
    text = envelope.__dict__.get("text")
    if text is None and envelope.__pydantic_extra__:
        text = envelope.__pydantic_extra__.get("text")
    if isinstance(text, str) and len(text) > max_text_length:
        raise EnvelopeError(f"'text' is {len(text)} characters; the limit is {max_text_length}")
    return envelope


def _parse_object(data: dict[Any, Any]) -> Envelope:
    type_name = data.get("type")
    # Only strings are looked up: a list would not even hash, and the model reports the error.
    validate = (_registry.validators.get(type_name, _validate_generic)
                if isinstance(type_name, str) else _validate_generic)
    try:
        return validate(data)
    except ValidationError as exc:
        raise EnvelopeError(_reason(exc)) from exc


def _parse_json_text(raw: str | bytes | bytearray) -> Envelope:
    try:
        envelope = _registry.validate_json(raw)
    except ValidationError:
        pass
    else:
        # A generic result of a registered type means its own model refused it.
        if type(envelope) is not Envelope or envelope.type not in _registry.models:
            return envelope
    # Invalid: decode and take the dict path, which picks the one model and words the error.
    try:
        data = from_json(raw)
    except ValueError as exc:
        raise EnvelopeError(f"not valid JSON: {_truncate(str(exc))}") from exc
    except TypeError as exc:  # jiter's answer to a str with lone surrogates
        raise EnvelopeError("not valid JSON: the text is not valid Unicode") from exc
    if not isinstance(data, dict):
        raise _not_an_object(data)
    return _parse_object(data)


# --- building -------------------------------------------------------------------------------

def envelope_to_dict(envelope: Envelope) -> dict[str, Any]:
    """The envelope as the wire carries it: camelCase keys, ``sentAt`` as an ISO string."""
    # Optional fields left unset (replyTo, name) are left out rather than sent as null: the
    # seed's envelopes carry only what they have.
    return envelope.model_dump(mode="json", by_alias=True, exclude_none=True)


def chat_message(*, room_id: str, sender_id: str, text: str, reply_to: str | None = None,
                 id: str | None = None, sent_at: datetime | None = None) -> ChatMessage:
    """A new chat message with a fresh ULID and the current time unless given."""
    if not isinstance(text, str):
        raise EnvelopeError(f"the text of a chat message must be a string, not {_kind(text)}")
    fields: dict[str, object] = {
        "type": "chat.message",
        "id": new_ulid() if id is None else id,
        "room_id": room_id,
        "sender_id": sender_id,
        "text": text,
        "sent_at": utc_now() if sent_at is None else sent_at,
    }
    if reply_to is not None:
        fields["reply_to"] = reply_to
    try:
        return ChatMessage.model_validate(fields)
    except ValidationError as exc:
        raise EnvelopeError(_reason(exc)) from exc
