"""Test servers beyond the seed's settings: a local Centrifugo with a raised channel limit.

``ServerSettings`` holds what the seed configures; the hub's ``HubSettings`` adds Centrifugo's
``client.channel_limit`` (128 by default) under the same name. A bot with 500 rooms needs it
raised on both server kinds, so ``make_centrifugo(channel_limit=1000)`` works for both: for the
real server, this subclass writes the option into the config file it starts with.
"""

from __future__ import annotations

import json
import os

from botkit.dev.localserver import (
    LocalCentrifugo,
    ServerSettings,
    centrifugo_config,
    ensure_centrifugo,
)

__all__ = ["TunedCentrifugo"]


class TunedCentrifugo(LocalCentrifugo):
    """A :class:`LocalCentrifugo` whose client channel limit is ``channel_limit``."""

    def __init__(self, settings: ServerSettings, *, channel_limit: int) -> None:
        super().__init__(settings)
        self.channel_limit = channel_limit

    def start(self, *, timeout: float = 30.0) -> None:
        if self._running():
            return
        binary = ensure_centrifugo()
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = centrifugo_config(self.settings)
        config["client"]["channel_limit"] = self.channel_limit
        self.config_path.write_text(json.dumps(config, indent=2))
        os.chmod(self.config_path, 0o600)  # it holds this run's secrets
        self._launch([str(binary), "--config", str(self.config_path)], timeout=timeout)
