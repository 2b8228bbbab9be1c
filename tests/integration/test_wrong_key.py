"""Issue 16 #10: a wrong server key, against a real server: one line naming the setting and
exit 2 (before: a 34-line ExceptionGroup traceback and exit 1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from botkit.dev.localserver import LocalCentrifugo
from tests.support.runtime_support import bots_yaml, new_project

ROOT = Path(__file__).resolve().parents[2]
WRONG_KEY = "not-the-servers-key-but-long-enough-for-hs256"  # >= 32 bytes: no jwt warning

BOTS = """\
- name: greeter
  user_id: bot_greeter
  rooms: [lobby]
"""


@pytest.mark.server
def test_a_wrong_server_key_is_one_line_naming_the_setting(centrifugo: LocalCentrifugo,
                                                           tmp_path: Path) -> None:
    assert centrifugo.api_key != WRONG_KEY
    config = tmp_path / "bots.yaml"
    config.write_text(bots_yaml(centrifugo, BOTS, project_id=new_project()))
    env = {**os.environ, "TEST_KEY": WRONG_KEY, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "botkit", "run", "-c", str(config)],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=60,
                            check=False)
    assert result.returncode == 2, result.stderr
    for noise in ("Traceback", "ExceptionGroup", "never retrieved", "unexpected error"):
        assert noise not in result.stderr
    assert WRONG_KEY not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("botkit: ")]
    assert errors == [
        f"botkit: {config}:5: xshathra.server_api_key: the server refused the bots' tokens "
        "signed with it; set it to the project's server API key"], result.stderr
    assert result.stderr.endswith(errors[0] + "\n")
    # One error, said once: no ERROR log line repeats it before the verdict.
    assert " ERROR " not in result.stderr, result.stderr
