"""The runtime freezes the start-up heap before its bots connect (and again once they are
ready), so the collection made at "ready" does not walk the whole start-up heap while a busy
room's first messages arrive; it unfreezes when it stops."""

from __future__ import annotations

import asyncio
import gc

from botkit import Bot
from botkit.config import parse_config
from botkit.runtime.supervisor import Runtime, load_bot

YAML = """\
xshathra:
  project_id: freeze
  realtime_url: ws://127.0.0.1:{port}/realtime/connection/websocket
  api_url: http://127.0.0.1:{port}/api/realtime
  server_api_key: not-used
state: {{backend: memory}}
bots:
  - name: frozen
    user_id: bot_frozen
    rooms: [lobby]
"""


async def test_the_heap_is_frozen_before_the_first_connection() -> None:
    seen: list[int] = []
    arrived = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(gc.get_freeze_count())  # the bot's connection, made in this process
        arrived.set()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = parse_config(YAML.format(port=port), source="freeze.yaml", environ={})
    runtime = Runtime(config, [load_bot(config, bc, bot=Bot("frozen"))
                               for bc in config.enabled_bots()], grace=1.0)
    assert gc.get_freeze_count() == 0
    task = asyncio.create_task(runtime.run())
    try:
        async with asyncio.timeout(10):
            await arrived.wait()
    finally:
        task.cancel()  # still connecting: a graceful stop would wait for the connect timeout
        async with asyncio.timeout(10):
            await asyncio.wait([task])
        server.close()
        await server.wait_closed()
    assert seen[0] > 0
    assert gc.get_freeze_count() == 0
