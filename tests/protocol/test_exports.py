"""The public surface of botkit.protocol is its modules' ``__all__``, re-exported once."""

from __future__ import annotations

import botkit.protocol as protocol
from botkit.protocol import backoff, client, codes, events, results, timers, types


def test_every_exported_name_exists() -> None:
    for name in protocol.__all__:
        assert getattr(protocol, name) is not None, name


def test_package_exports_exactly_its_modules_public_names() -> None:
    assert len(set(protocol.__all__)) == len(protocol.__all__)
    modules = (backoff, client, codes, events, results, timers, types)
    assert set(protocol.__all__) == {name for m in modules for name in m.__all__}
