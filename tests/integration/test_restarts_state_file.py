"""The state file holds the bots' stream positions (issue 11): a corrupt or read-only one is an
operator's problem, told at start in one line with exit 2 (no traceback), and the file is left
as it was, not replaced by an empty one that would forget every position."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from botkit.dev.localserver import LocalCentrifugo
from tests.support.botkit_run import ROOT, Replies, botkit_run
from tests.support.humans import human
from tests.support.runtime_support import bots_yaml, new_project

ECHO = """\
- name: replays
  plugin: tests.plugins.replays
  user_id: bot_replays
  rooms: [lobby]
"""


async def _run_refused(config: Path, key: str) -> tuple[int | None, str, str]:
    """``botkit run`` that is expected to stop at once: (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "botkit", "run", "-c", str(config), "--grace", "2s", cwd=ROOT,
        env={**os.environ, "TEST_KEY": key, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        async with asyncio.timeout(20):
            out, err = await process.communicate()
    except TimeoutError:
        # Still running: it took the file and served (the failure this test is about).
        process.kill()
        out, err = await process.communicate()
        return None, out.decode(errors="replace"), err.decode(errors="replace")
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def _assert_one_line_naming(err: str, out: str, state: Path) -> None:
    assert "Traceback" not in err + out, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("botkit: "), lines[0]
    assert str(state) in lines[0], lines[0]


@pytest.mark.server
async def test_a_corrupt_state_file_is_one_line_and_exit_2(
        centrifugo: LocalCentrifugo, tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    garbage = b"this is not an SQLite database, and never was.\n" * 200
    state.write_bytes(garbage)
    config = tmp_path / "bots.yaml"
    config.write_text(bots_yaml(centrifugo, ECHO, project_id=new_project(),
                                state_path=str(state)))
    code, out, err = await _run_refused(config, centrifugo.api_key)
    assert code == 2, err
    _assert_one_line_naming(err, out, state)
    assert state.read_bytes() == garbage  # not "repaired" into an empty store


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` can't be written, even by root (who ignores modes): ``chattr +i`` then."""
    mode = path.stat().st_mode
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], capture_output=True,
                                        check=False).returncode != 0:
        pytest.skip("running as root, and the file can't be made immutable")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], capture_output=True, check=True)


@pytest.mark.server
async def test_a_read_only_state_file_is_one_line_and_exit_2(
        centrifugo: LocalCentrifugo, tmp_path: Path) -> None:
    project = new_project()
    state = tmp_path / "state.sqlite"
    config = tmp_path / "bots.yaml"
    config.write_text(bots_yaml(centrifugo, ECHO, project_id=project, state_path=str(state)))
    # A state file with a position in it: one command answered, then a clean stop.
    async with human(centrifugo, project, "lobby", "user_ivy") as ivy:
        replies = Replies(ivy, "bot_replays")
        async with botkit_run(config, centrifugo.api_key) as bot:
            await bot.serving("replays")
            await ivy.say("/echo one")
            await replies.count(1)
            assert await bot.stop(signal.SIGTERM) == 0, bot.log()
    before = state.read_bytes()
    with read_only(state):
        code, out, err = await _run_refused(config, centrifugo.api_key)
    assert code == 2, err
    _assert_one_line_naming(err, out, state)
    assert state.read_bytes() == before
