"""The ``xshathra:`` section: how to reach the Xshathra Realtime server and its API (URLs checked
without ever quoting them: they may carry credentials)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from botkit.config._durations import TokenTtl
from botkit.config._section import Section
from botkit.tokens import DEFAULT_TOKEN_TTL, validate_room_id

__all__ = ["XshathraConfig"]


def _check_url(value: str, schemes: tuple[str, ...], hint: str) -> str:
    """Check a URL without quoting it: URLs may carry credentials (``user:pass@host``)."""
    names = " or ".join(f"{scheme}://" for scheme in schemes)
    parts = urlsplit(value)
    if "://" not in value or parts.scheme.lower() not in schemes:
        got = f"one starting with {parts.scheme}://" if "://" in value else "no scheme"
        raise ValueError(f"expected a URL starting with {names}, got {got}; {hint}")
    if any(char.isspace() for char in value):
        raise ValueError(f"the URL contains whitespace; {hint}")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError(f"the URL has an invalid port; {hint}") from None
    if not parts.hostname:
        raise ValueError(f"the URL has no host; {hint}")
    return value


class XshathraConfig(Section):
    """How to reach the Xshathra Realtime server and its API."""

    project_id: str = Field(description="the project id, e.g. proj_01HZZZZZZZZZZZZZZZZZZZZZZ")
    realtime_url: str = Field(
        description="the websocket URL, e.g. ws://localhost:3001/realtime/connection/websocket")
    api_url: str = Field(
        description="the server API URL, e.g. http://localhost:3001/api/realtime")
    server_api_key: SecretStr = Field(
        description="the server API key, e.g. ${XSHATHRA_SERVER_API_KEY}")
    token_ttl: TokenTtl = Field(default=DEFAULT_TOKEN_TTL,
                                description="a duration, e.g. 15m")

    @field_validator("project_id")
    @classmethod
    def _check_project_id(cls, value: str) -> str:
        return validate_room_id(value, what="project id")

    @field_validator("realtime_url")
    @classmethod
    def _check_realtime_url(cls, value: str) -> str:
        return _check_url(value, ("ws", "wss"), "write e.g. "
                          "ws://localhost:3001/realtime/connection/websocket")

    @field_validator("api_url")
    @classmethod
    def _check_api_url(cls, value: str) -> str:
        # Paths are joined onto it later ("/publish"): a trailing slash would double up.
        return _check_url(value, ("http", "https"),
                          "write e.g. http://localhost:3001/api/realtime").rstrip("/")

    @field_validator("server_api_key")
    @classmethod
    def _check_server_api_key(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value()
        if not key:
            raise ValueError("is empty; set it to the project's server API key")
        if key != key.strip():
            # Typically a newline pasted into an environment variable: the server would refuse
            # the key with a puzzling 401, so say it here.
            raise ValueError("has leading or trailing whitespace; remove it")
        return value

