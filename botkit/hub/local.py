"""The hub as a local server process, with the interface of
:class:`botkit.localserver.LocalCentrifugo`, so that tests and tools can run either.

The hub runs as ``python -m botkit.hub`` in its own process group: a restart loses every stream
and presence entry, exactly like Centrifugo's memory engine, and a kill is a real kill (no close
frames), which is what the reconnect tests need.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from botkit.exceptions import LocalServerError
from botkit.hub.app import API_PREFIX, WS_PATH
from botkit.hub.settings import API_KEY_ENV, HubSettings

__all__ = ["LocalHub"]


class LocalHub:
    """One hub process on loopback. ``start()`` returns once ``/health`` answers."""

    def __init__(self, settings: HubSettings | None = None, *,
                 workdir: Path | None = None) -> None:
        self.settings = settings or HubSettings()
        self.settings.config()  # refuse bad settings here, not in a log file
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="botkit-hub-"))
        self.log_path = self.workdir / "hub.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return self.settings.port

    @property
    def api_key(self) -> str:
        return self.settings.api_key

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{WS_PATH}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, *, timeout: float = 30.0) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        # The key travels in the environment: a command line is readable by every local user.
        env = dict(os.environ, **{API_KEY_ENV: self.settings.api_key})
        # The same botkit as this process, installed or not.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            [root, *filter(None, [os.environ.get("PYTHONPATH")])])
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "botkit.hub", *self.settings.to_args()],
                stdout=log_file, stderr=subprocess.STDOUT, cwd=self.workdir, env=env,
                start_new_session=True)
        self._wait_healthy(timeout)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/health"
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise LocalServerError(
                    f"the hub exited with code {self._process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise LocalServerError(
            f"the hub did not answer {url} within {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop the process by its pid: SIGTERM (or SIGKILL when ``kill``), then wait."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)

    def restart(self, *, kill: bool = True) -> None:
        """Stop (killed by default: memory state, epochs included, is gone) and start again on
        the same port with the same key."""
        self.stop(kill=kill)
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalHub:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
