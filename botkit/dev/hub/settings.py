"""The hub's settings: the knobs of :class:`botkit.dev.localserver.ServerSettings`, same names and
same text durations (``"25s"``), plus a few that Centrifugo has and the seed's config leaves at
their defaults. :class:`HubSettings` is what a developer or a test writes; :class:`HubConfig` is
the same, checked and in seconds, for the server to run on. Settings travel to the hub process as
command-line options, except the key, which travels in the environment (never on a command line,
where any local user can read it).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from botkit.dev.localserver import ServerSettings

__all__ = ["API_KEY_ENV", "HubConfig", "HubSettings", "parse_go_duration"]

API_KEY_ENV = "XSHATHRA_SERVER_API_KEY"

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str, *, allow_disabled: bool = False) -> float:
    """Seconds in a Go duration as Centrifugo's config takes it (``"25s"``, ``"500ms"``,
    ``"1m30s"``, ``"0"``). With ``allow_disabled`` a negative value (Centrifugo's ``-1``) means
    "off" and gives 0. Not bots.yaml's ``parse_duration``, which also takes plain seconds and
    no ``ns``/``us`` or ``-1``: these are the settings of the server, written as for the real
    one."""
    value = text.strip()
    if allow_disabled and value.startswith("-"):
        parse_go_duration(value[1:])
        return 0.0
    if value == "0":
        return 0.0
    if not value or _PART.sub("", value):
        raise ValueError(f"invalid duration {text!r}: write it like 25s, 500ms or 1m30s")
    return sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(value))


@dataclass(frozen=True, slots=True)
class HubConfig:
    """Checked settings in seconds; 0 turns pings or pong checks off."""

    host: str
    port: int
    api_key: str = field(repr=False)  # never in a repr, a log line or an error
    ping_interval: float
    pong_timeout: float
    history_size: int
    history_ttl: float
    expired_close_delay: float
    expired_sub_close_delay: float
    presence_update_interval: float
    stale_close_delay: float
    allowed_origins: tuple[str, ...]
    channel_limit: int
    queue_max_size: int
    message_size_limit: int
    history_max_publication_limit: int
    recovery_max_publication_limit: int
    log_level: str
    client_publish: bool = True


@dataclass(frozen=True, slots=True)
class HubSettings(ServerSettings):
    """The knobs of the local Centrifugo (same names, same defaults), and more."""

    # Beyond ServerSettings: Centrifugo's defaults, named as in its config.
    host: str = "127.0.0.1"
    stale_close_delay: str = "10s"
    channel_limit: int = 128
    queue_max_size: int = 1024 * 1024
    message_size_limit: int = 65536
    history_max_publication_limit: int = 300
    recovery_max_publication_limit: int = 300

    def config(self) -> HubConfig:
        """Check the settings the way Centrifugo checks its config at startup."""
        ping = parse_go_duration(self.ping_interval, allow_disabled=True)
        pong = parse_go_duration(self.pong_timeout, allow_disabled=True)
        if ping and pong and ping <= pong:
            raise ValueError("ping_interval must be greater than pong_timeout")
        history_ttl = parse_go_duration(self.history_ttl)
        if (self.history_size > 0) != (history_ttl > 0):
            raise ValueError("history_size and history_ttl must both be positive or both 0")
        if self.history_size <= 0:
            # force_recovery of the chat namespace needs history, as in Centrifugo.
            raise ValueError("the chat namespace forces recovery, which needs history")
        for name in ("channel_limit", "queue_max_size", "message_size_limit",
                     "history_max_publication_limit", "recovery_max_publication_limit"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is out of range")
        return HubConfig(
            host=self.host, port=self.port, api_key=self.api_key, ping_interval=ping,
            pong_timeout=pong, history_size=self.history_size, history_ttl=history_ttl,
            expired_close_delay=parse_go_duration(self.expired_close_delay),
            expired_sub_close_delay=parse_go_duration(self.expired_sub_close_delay),
            presence_update_interval=_positive(self.presence_update_interval),
            stale_close_delay=_positive(self.stale_close_delay),
            allowed_origins=tuple(self.allowed_origins), channel_limit=self.channel_limit,
            queue_max_size=self.queue_max_size, message_size_limit=self.message_size_limit,
            history_max_publication_limit=self.history_max_publication_limit,
            recovery_max_publication_limit=self.recovery_max_publication_limit,
            log_level=self.log_level, client_publish=self.client_publish)

    def to_args(self) -> list[str]:
        """Command-line options for ``python -m botkit.dev.hub`` (everything but the key)."""
        args: list[str] = []
        for item in fields(self):
            if item.name == "api_key":
                continue
            value = getattr(self, item.name)
            if isinstance(value, tuple):
                for entry in value:
                    args += [f"--{_option(item.name)}={entry}"]
            else:
                args += [f"--{_option(item.name)}={value}"]
        return args

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        defaults = cls(api_key="")
        for item in fields(cls):
            if item.name == "api_key":
                continue
            default = getattr(defaults, item.name)
            if isinstance(default, bool):
                parser.add_argument(f"--{_option(item.name)}", dest=item.name, type=_flag,
                                    default=default, help=f"true or false; default: {default}")
            elif isinstance(default, tuple):
                parser.add_argument(f"--{_option(item.name)}", dest=item.name, action="append",
                                    default=[], help="repeat for several (glob patterns)")
            else:
                parser.add_argument(f"--{_option(item.name)}", dest=item.name,
                                    type=type(default), default=default,
                                    help=f"default: {default}")

    @classmethod
    def from_arguments(cls, namespace: argparse.Namespace, api_key: str) -> HubSettings:
        values: dict[str, object] = {"api_key": api_key}
        for item in fields(cls):
            if item.name != "api_key":
                value = getattr(namespace, item.name)
                values[item.name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def from_argv(cls, argv: Sequence[str], api_key: str) -> HubSettings:
        parser = argparse.ArgumentParser()
        cls.add_arguments(parser)
        return cls.from_arguments(parser.parse_args(list(argv)), api_key)


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value == "true"


def _option(name: str) -> str:
    return name.replace("_", "-")


def _positive(text: str) -> float:
    seconds = parse_go_duration(text)
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return seconds
