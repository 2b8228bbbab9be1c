"""The hub as a local server process, with the interface of
:class:`botkit.dev.localserver.LocalCentrifugo`, so that tests and tools can run either.

The hub runs as ``python -m botkit.dev.hub`` in its own process group: a restart loses every stream
and presence entry, exactly like Centrifugo's memory engine, and a kill is a real kill (no close
frames), which is what the reconnect tests need.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from botkit.dev.hub.settings import API_KEY_ENV, HubSettings
from botkit.dev.localserver import LocalProcess

__all__ = ["LocalHub"]


class LocalHub(LocalProcess):
    """One hub process on loopback. ``start()`` returns once ``/health`` answers."""

    _what = "the hub"

    def __init__(self, settings: HubSettings | None = None, *,
                 workdir: Path | None = None) -> None:
        self.settings = settings or HubSettings()
        self.settings.config()  # refuse bad settings here, not in a log file
        super().__init__(self.settings.port, self.settings.api_key, workdir=workdir,
                         prefix="botkit-hub-", log_name="hub.log")

    def start(self, *, timeout: float = 30.0) -> None:
        if self._running():
            return
        # The key travels in the environment: a command line is readable by every local user.
        env = dict(os.environ, **{API_KEY_ENV: self.settings.api_key})
        # The same botkit as this process, installed or not.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            [root, *filter(None, [os.environ.get("PYTHONPATH")])])
        self._launch([sys.executable, "-m", "botkit.dev.hub", *self.settings.to_args()], env=env,
                     timeout=timeout)
