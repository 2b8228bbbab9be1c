"""Which stores a runtime opens: SQLite without ``cluster:`` (as before), and a clear
ConfigError when ``cluster:`` is set but redis-py (the cluster extra) is not installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from botkit.config import parse_config
from botkit.errors import ConfigError
from botkit.runtime.storage import open_storage
from botkit.state.sqlite import SQLiteStateStore

HEAD = ("xshathra:\n  project_id: proj_1\n"
        "  realtime_url: ws://localhost:3001/realtime/connection/websocket\n"
        "  api_url: http://localhost:3001/api/realtime\n  server_api_key: k\n"
        "bots: []\nstate: {path: var/state.sqlite}\n")


async def test_without_cluster_the_state_file_as_before(tmp_path: Path) -> None:
    config = parse_config(HEAD, base_dir=tmp_path)
    async with open_storage(config) as storage:
        assert isinstance(storage.state, SQLiteStateStore)
        assert storage.jobs_path == tmp_path / "var" / "state.sqlite"
        assert storage.job_store is None
        assert storage.redis is None
        await storage.state.set("dice", "k", 1)
    assert (tmp_path / "var" / "state.sqlite").exists()


async def test_cluster_without_redis_installed_names_the_extra(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("redis", "redis.asyncio", "botkit.state.redis", "botkit.jobs.redis_store"):
        monkeypatch.setitem(sys.modules, module, None)  # import now raises ImportError
    config = parse_config(HEAD + "cluster: {redis_url: 'redis://:pw@localhost:6379/0'}\n",
                          base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"pip install 'botkit\[cluster\]'") as failed:
        async with open_storage(config):
            pass
    assert "pw" not in str(failed.value)
    assert not (tmp_path / "var").exists()  # the state file is not made with cluster:
