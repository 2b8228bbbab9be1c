"""The ``ops:`` section of bots.yaml: the operators' HTTP endpoint of ``botkit run``.

::

    ops:
      host: 127.0.0.1   # where it listens; 0.0.0.0 in a container, behind the platform's network
      port: 9180        # /healthz, /readyz and /metrics

Without the section there is no endpoint (``botkit run --ops-port N`` turns it on as well). It
answers anyone who can reach it and tells them which bots run in which rooms: keep it on
loopback or a private network.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field, StrictInt, field_validator

from botkit.config._section import Section

__all__ = ["DEFAULT_OPS_HOST", "DEFAULT_OPS_PORT", "OpsConfig"]

DEFAULT_OPS_HOST = "127.0.0.1"
DEFAULT_OPS_PORT = 9180


class OpsConfig(Section):
    """Where the ops endpoint listens."""

    host: str = Field(default=DEFAULT_OPS_HOST,
                      description="a host name or IP address to listen on, e.g. 127.0.0.1")
    port: StrictInt = Field(default=DEFAULT_OPS_PORT, ge=1, le=65535,
                            description="a TCP port number, e.g. 9180")

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        bad = not value or any(char.isspace() or char in "/@[]" for char in value)
        if not bad and ":" in value:  # only an IPv6 address may hold colons
            try:
                ipaddress.IPv6Address(value)
            except ValueError:
                bad = True
        if bad:
            raise ValueError("expected a host name or IP address, e.g. 127.0.0.1 or 0.0.0.0 "
                             "(no scheme, port or path)")
        return value
