"""A local Xshathra Realtime: Centrifugo v6.9.1 built from source and run on loopback.

Used by the test suite (one server per test session) and by ``botkit server`` for local work.
Centrifugo is built once with ``go install`` into a cache folder and reused; every start writes a
fresh config with secrets generated for that run, so nothing secret is ever committed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from botkit.errors import LocalServerError

__all__ = [
    "API_PREFIX",
    "CENTRIFUGO_MODULE",
    "CENTRIFUGO_VERSION",
    "WS_PATH",
    "LocalCentrifugo",
    "LocalProcess",
    "ServerSettings",
    "centrifugo_config",
    "ensure_centrifugo",
    "free_port",
]

log = logging.getLogger(__name__)

CENTRIFUGO_VERSION = "v6.9.1"
CENTRIFUGO_MODULE = "github.com/centrifugal/centrifugo/v6"
MIN_GO = (1, 26)
WS_PATH = "/realtime/connection/websocket"
API_PREFIX = "/api/realtime"


def _cache_dir() -> Path:
    base = os.environ.get("BOTKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "botkit")
    return Path(base) / f"centrifugo-{CENTRIFUGO_VERSION}"


def _go_version(go: str) -> tuple[int, int]:
    try:
        out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True,
                             timeout=60, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise LocalServerError(f"could not run '{go} env GOVERSION': {exc}") from exc
    match = re.match(r"go(\d+)\.(\d+)", out)
    if not match:
        raise LocalServerError(f"could not read the Go version from {out!r}")
    return int(match.group(1)), int(match.group(2))


def ensure_centrifugo(*, timeout: float = 1800.0) -> Path:
    """Return the path of a Centrifugo v6.9.1 binary, building it with ``go install`` once.

    ``BOTKIT_CENTRIFUGO`` names a ready binary and skips the build.
    """
    override = os.environ.get("BOTKIT_CENTRIFUGO")
    if override:
        path = Path(override)
        if not path.is_file():
            raise LocalServerError(f"BOTKIT_CENTRIFUGO={override} is not a file")
        return path
    cache = _cache_dir()
    binary = cache / "centrifugo"
    if binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        raise LocalServerError(
            f"Go >= {MIN_GO[0]}.{MIN_GO[1]} is needed to build Centrifugo {CENTRIFUGO_VERSION} "
            "for the tests, and 'go' is not on PATH. Install Go (https://go.dev/doc/install) or "
            "set BOTKIT_CENTRIFUGO to a Centrifugo v6 binary.")
    version = _go_version(go)
    if version < MIN_GO:
        raise LocalServerError(
            f"Centrifugo {CENTRIFUGO_VERSION} needs Go >= {MIN_GO[0]}.{MIN_GO[1]}; "
            f"found Go {version[0]}.{version[1]}. Upgrade Go or set BOTKIT_CENTRIFUGO.")
    cache.mkdir(parents=True, exist_ok=True)
    # Test workers or a test run and a dev server may race to build: one builds, others wait.
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file():
            return binary
        staging = Path(tempfile.mkdtemp(dir=cache, prefix="build-"))
        env = dict(os.environ, GOBIN=str(staging), CGO_ENABLED="0")
        ldflags = f"-X {CENTRIFUGO_MODULE}/internal/build.Version={CENTRIFUGO_VERSION[1:]}"
        command = [go, "install", "-ldflags", ldflags, f"{CENTRIFUGO_MODULE}@{CENTRIFUGO_VERSION}"]
        log.warning("building Centrifugo %s with Go (once; cached in %s)", CENTRIFUGO_VERSION,
                    cache)
        started = time.monotonic()
        try:
            result = subprocess.run(command, env=env, capture_output=True, text=True,
                                    timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise LocalServerError(
                f"building Centrifugo took longer than {timeout:.0f}s") from exc
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-15:])
            raise LocalServerError(f"'go install' of Centrifugo failed:\n{tail}")
        os.replace(staging / "centrifugo", binary)
        shutil.rmtree(staging, ignore_errors=True)
        log.warning("built Centrifugo in %.0fs", time.monotonic() - started)
    return binary


def free_port() -> int:
    """A TCP port that is free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The knobs a test or a developer may turn; everything else is the seed's setup."""

    port: int = 3001
    # Out of the repr (and so of every log line and error that shows the settings): the key
    # signs every token of the server.
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    ping_interval: str = "25s"
    pong_timeout: str = "8s"
    history_size: int = 100
    history_ttl: str = "300s"
    # How long past a token's expiry the server waits before closing. Centrifugo's default is
    # 25 s; the tests lower it so a client that forgets to refresh is caught quickly.
    expired_close_delay: str = "25s"
    expired_sub_close_delay: str = "25s"
    presence_update_interval: str = "27s"
    allowed_origins: tuple[str, ...] = ()
    log_level: str = "info"
    # The seed's prototype mode: subscribers of a chat room may publish into it directly,
    # unmoderated, naming any senderId. On here, so that the test suite's humans can post and
    # spoofing can be tested; production (and ``botkit dev``, unless ``dev: client_publish``)
    # keeps it off and sends through a moderating backend.
    client_publish: bool = True


def centrifugo_config(settings: ServerSettings) -> dict[str, Any]:
    """Centrifugo v6 config serving the Xshathra paths with the seed's locked-down ``chat``."""
    chat_namespace = {
        "name": "chat",
        "presence": True,
        "join_leave": True,
        "force_push_join_leave": True,
        "history_size": settings.history_size,
        "history_ttl": settings.history_ttl,
        "force_recovery": True,
        # Subscribing needs a subscription token minted by the backend: rooms are private.
        "allow_subscribe_for_client": False,
        # The seed's prototype mode when on (see ServerSettings.client_publish). Production
        # replies go through the server API.
        "allow_publish_for_subscriber": settings.client_publish,
        "allow_presence_for_subscriber": True,
        "allow_history_for_subscriber": True,
    }
    return {
        "http_server": {"address": "127.0.0.1", "port": settings.port},
        "log": {"level": settings.log_level},
        "client": {
            "token": {"hmac_secret_key": settings.api_key},
            "allowed_origins": list(settings.allowed_origins),
            "insecure": False,
            "allow_anonymous_connect_without_token": False,
            "ping_interval": settings.ping_interval,
            "pong_timeout": settings.pong_timeout,
            "expired_close_delay": settings.expired_close_delay,
            "expired_sub_close_delay": settings.expired_sub_close_delay,
            "presence_update_interval": settings.presence_update_interval,
        },
        "websocket": {"handler_prefix": WS_PATH},
        "http_api": {"key": settings.api_key, "handler_prefix": API_PREFIX},
        "health": {"enabled": True},
        "usage_stats": {"disabled": True},
        "channel": {"namespaces": [chat_namespace]},
    }


class LocalProcess:
    """A local server process on loopback, stopped by its pid: what LocalCentrifugo and the
    hub's LocalHub share. Subclasses say how to ``start()`` and where the server listens."""

    _what = "the server"

    def __init__(self, port: int, api_key: str, *, workdir: Path | None, prefix: str,
                 log_name: str) -> None:
        self._port = port
        self._api_key = api_key
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=prefix))
        self.log_path = self.workdir / log_name
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{WS_PATH}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, timeout: float = 30.0) -> None:
        raise NotImplementedError

    def _launch(self, command: list[str], *, env: dict[str, str] | None = None,
                timeout: float) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, cwd=self.workdir, env=env,
                start_new_session=True)
        self._wait_healthy(timeout)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/health"
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise LocalServerError(f"{self._what} exited with code "
                                       f"{self._process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise LocalServerError(
            f"{self._what} did not answer {url} within {timeout:.0f}s:\n{self.log_tail()}")

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
        """Stop (killed by default: in-memory history, epochs and presence are gone) and start
        again on the same port with the same secrets."""
        self.stop(kill=kill)
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class LocalCentrifugo(LocalProcess):
    """One Centrifugo process on loopback. ``start()`` returns once ``/health`` answers."""

    _what = "Centrifugo"

    def __init__(self, settings: ServerSettings | None = None, *,
                 workdir: Path | None = None) -> None:
        self.settings = settings or ServerSettings()
        super().__init__(self.settings.port, self.settings.api_key, workdir=workdir,
                         prefix="botkit-centrifugo-", log_name="centrifugo.log")
        self.config_path = self.workdir / "config.json"

    def start(self, *, timeout: float = 30.0) -> None:
        if self._running():
            return
        binary = ensure_centrifugo()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(centrifugo_config(self.settings), indent=2))
        os.chmod(self.config_path, 0o600)  # it holds this run's secrets
        self._launch([str(binary), "--config", str(self.config_path)], timeout=timeout)
