"""The ops endpoint's HTTP listener: a small server in a thread of its own.

Its own thread, not a task on the event loop: ``/healthz`` must answer "unhealthy" precisely
when the loop is stuck (a handler that blocks it, a runaway computation), which a listener on
that loop could not. Each answer is computed on the loop within a deadline (see loop.py);
requests are served one thread each (``ThreadingHTTPServer``), every socket with a timeout, so
a slow client holds one thread for seconds at most and never the loop.

Routes: ``/healthz`` (200 or 503, the loop's lag), ``/readyz`` (200 or 503, see readiness.py)
and ``/metrics`` (Prometheus text, see metrics.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from botkit.errors import ConfigError
from botkit.ops.loop import LoopStuckError, ask_loop
from botkit.ops.metrics import RuntimeCollector
from botkit.ops.readiness import readiness
from botkit.runtime.supervisor import Runtime

__all__ = ["HEALTH_TIMEOUT", "OpsServer", "serve_ops"]

log = logging.getLogger("botkit.ops")

HEALTH_TIMEOUT = 1.0
"""Seconds the loop has to run a callback before /healthz calls it stuck. A healthy loop
answers in well under a millisecond; a second is far beyond any lag a bot can serve with."""
_ANSWER_TIMEOUT = 3.0
"""Seconds the loop has to compute /readyz or /metrics."""
_SOCKET_TIMEOUT = 5.0
_STOP_TIMEOUT = 5.0


class OpsServer:
    """Listens on ``host:port`` (0: any free port, see :attr:`port`) once :meth:`start` is
    called on the loop whose runtime it reports; :meth:`close` stops it."""

    def __init__(self, host: str, port: int, get_runtime: Callable[[], Runtime | None]) -> None:
        self.host = host
        self.requested_port = port
        self._get_runtime = get_runtime
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1] if self._httpd is not None else self.requested_port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and start serving (ConfigError naming the address if it can't bind)."""
        loop = asyncio.get_running_loop()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(RuntimeCollector(loop, self._get_runtime, timeout=_ANSWER_TIMEOUT))
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=registry)
        handler = _handler_class(loop, self._get_runtime, registry)
        server_class = _IPv6Server if ":" in self.host else ThreadingHTTPServer
        try:
            self._httpd = server_class((self.host, self.requested_port), handler)
        except OSError as exc:
            raise ConfigError(f"the ops endpoint cannot listen on {self.host}:"
                              f"{self.requested_port}: {exc.strerror or exc}; choose another "
                              "port (ops.port in bots.yaml, or --ops-port)") from None
        self._httpd.daemon_threads = True  # each bounded by the socket timeout
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name="botkit ops endpoint", daemon=True)
        self._thread.start()
        log.info("ops endpoint on %s (/healthz, /readyz, /metrics)", self.url)

    def close(self) -> None:
        httpd, self._httpd = self._httpd, None
        thread, self._thread = self._thread, None
        if httpd is None:
            return
        httpd.shutdown()  # waits for serve_forever to return (one poll interval at most)
        httpd.server_close()
        if thread is not None:
            thread.join(_STOP_TIMEOUT)


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


@contextlib.asynccontextmanager
async def serve_ops(host: str, port: int,
                    get_runtime: Callable[[], Runtime | None]) -> AsyncIterator[OpsServer]:
    """The ops endpoint, serving for as long as the block runs."""
    server = OpsServer(host, port, get_runtime)
    server.start()
    try:
        yield server
    finally:
        # shutdown() blocks for up to a poll interval: not on the loop.
        await asyncio.to_thread(server.close)


def _handler_class(loop: asyncio.AbstractEventLoop, get_runtime: Callable[[], Runtime | None],
                   registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = _SOCKET_TIMEOUT
        server_version = "botkit-ops"

        def do_GET(self) -> None:
            path = self.path.partition("?")[0]
            if path == "/healthz":
                self._healthz()
            elif path == "/readyz":
                self._readyz()
            elif path == "/metrics":
                self._metrics()
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": "not found", "routes": [
                    "/healthz", "/readyz", "/metrics"]})

        def _healthz(self) -> None:
            asked = time.monotonic()
            try:
                ask_loop(loop, lambda: None, HEALTH_TIMEOUT)
            except LoopStuckError as exc:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"healthy": False, "reason": str(exc)})
                return
            lag = (time.monotonic() - asked) * 1000
            self._json(HTTPStatus.OK, {"healthy": True, "loop_lag_ms": round(lag, 3)})

        def _readyz(self) -> None:
            try:
                ready, report = ask_loop(loop, lambda: readiness(get_runtime()),
                                         _ANSWER_TIMEOUT)
            except LoopStuckError as exc:
                ready, report = False, {"ready": False, "problems": [str(exc)]}
            self._json(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE, report)

        def _metrics(self) -> None:
            try:
                body = generate_latest(registry)
            except LoopStuckError as exc:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, f"{exc}\n".encode(),
                           "text/plain; charset=utf-8")
                return
            self._send(HTTPStatus.OK, body, CONTENT_TYPE_LATEST)

        def _json(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            self._send(status, json.dumps(body, indent=1).encode() + b"\n", "application/json")

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            # Probes come every few seconds: their requests are not worth a line each.
            log.debug("%s %s", self.address_string(), format % args)

    return Handler
