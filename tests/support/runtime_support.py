"""Run a botkit runtime in-process against the test server."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import textwrap
from collections.abc import AsyncIterator

from botkit.config import parse_config
from botkit.dev.localserver import LocalCentrifugo
from botkit.runtime.supervisor import Runtime, load_bots


def bots_yaml(server: LocalCentrifugo, bots: str, *, project_id: str,
              realtime_url: str | None = None, state_path: str | None = None) -> str:
    """A bots.yaml for the test server; state in memory unless a file is named."""
    state = (f"state: {{backend: sqlite, path: {state_path}}}" if state_path
             else "state: {backend: memory}")
    head = textwrap.dedent(f"""\
        xshathra:
          project_id: {project_id}
          realtime_url: {realtime_url or server.ws_url}
          api_url: {server.api_url}
          server_api_key: ${{TEST_KEY}}
          token_ttl: 10m
        {state}
        bots:
        """)
    return head + textwrap.indent(textwrap.dedent(bots), "  ")


def new_project() -> str:
    return f"proj_{secrets.token_hex(4)}"


@contextlib.asynccontextmanager
async def running(server: LocalCentrifugo, yaml_text: str, *, grace: float = 5.0,
                  misfire_grace: float = 300.0) -> AsyncIterator[Runtime]:
    config = parse_config(yaml_text, source="test-bots.yaml",
                          environ={"TEST_KEY": server.api_key})
    runtime = Runtime(config, load_bots(config), grace=grace, misfire_grace=misfire_grace)
    task = asyncio.create_task(runtime.run())
    try:
        async with asyncio.timeout(15):
            ready = asyncio.ensure_future(runtime.wait_ready())
            await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                ready.cancel()
                task.result()
        yield runtime
    finally:
        runtime.stop()
        async with asyncio.timeout(grace + 10):
            await task
