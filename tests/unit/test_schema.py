"""`botkit schema`: the JSON Schema editors check bots.yaml with, against the loader's rules."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from botkit.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "bots.yaml"
SCHEMA_FILE = ROOT / "docs" / "bots.schema.json"


def _printed_schema() -> str:
    done = subprocess.run([sys.executable, "-m", "botkit", "schema"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(_printed_schema())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _shipped() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    return loaded


def _errors(validator: jsonschema.Draft202012Validator, document: object) -> list[str]:
    return [error.message for error in validator.iter_errors(document)]


def test_the_committed_schema_is_what_botkit_schema_prints() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == _printed_schema(), (
        "docs/bots.schema.json is stale: run `botkit schema > docs/bots.schema.json`")


def test_the_shipped_bots_yaml_points_editors_at_the_schema() -> None:
    first = SHIPPED.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=./docs/bots.schema.json"
    assert (SHIPPED.parent / "docs" / "bots.schema.json").is_file()


def test_the_shipped_bots_yaml_is_valid_as_written(
        validator: jsonschema.Draft202012Validator) -> None:
    document = _shipped()
    # As written: ${...} references unexpanded, durations as text, rooms as bare ids.
    assert document["xshathra"]["server_api_key"] == "${XSHATHRA_SERVER_API_KEY}"
    assert _errors(validator, document) == []
    # ...and the loader, after expansion, agrees.
    load_config(SHIPPED, environ={"XSHATHRA_SERVER_API_KEY": "k" * 32})


@pytest.mark.parametrize(("path", "typo"), [
    ((), "xshatra"),
    (("xshathra",), "server_api_kee"),
    (("bots", 0), "romos"),
    (("bots", 1, "limits"), "handler_timout"),
    (("bots", 3, "schedules", 0), "timzone"),
    (("state",), "bakend"),
])
def test_a_misspelled_key_is_refused(validator: jsonschema.Draft202012Validator,
                                     path: tuple[str | int, ...], typo: str) -> None:
    document = _shipped()
    parent: Any = document
    for part in path:
        parent = parent[part]
    parent[typo] = "x"
    errors = _errors(validator, document)
    assert len(errors) == 1
    assert repr(typo) in errors[0]


@pytest.mark.parametrize("value", [30, 0.5, "30s", "1h30m", "500ms", "${TTL}", "${TTL:-15m}"])
def test_a_duration_is_a_number_a_duration_string_or_a_variable(
        validator: jsonschema.Draft202012Validator, value: object) -> None:
    document = _shipped()
    document["xshathra"]["token_ttl"] = value
    document["bots"][3]["schedules"][0] = {"every": value, "text": "hi"}
    assert _errors(validator, document) == []


@pytest.mark.parametrize("value", ["soon", "10 parsecs", -1, 0, True, [1]])
def test_what_is_not_a_duration_is_refused(validator: jsonschema.Draft202012Validator,
                                            value: object) -> None:
    document = _shipped()
    document["bots"][1]["limits"]["handler_timeout"] = value
    assert _errors(validator, document) != []


def test_a_string_key_may_come_from_a_file_instead(
        validator: jsonschema.Draft202012Validator) -> None:
    document = _shipped()
    xshathra = document["xshathra"]
    xshathra["server_api_key_file"] = "${CREDENTIALS_DIRECTORY}/server_api_key"
    del xshathra["server_api_key"]
    assert _errors(validator, document) == []
    without = copy.deepcopy(document)
    del without["xshathra"]["server_api_key_file"]
    assert _errors(validator, without) != []  # required: one form or the other


def test_whole_numbers_and_booleans_cannot_be_variables(
        validator: jsonschema.Draft202012Validator) -> None:
    # The expanded value is a string and these fields are strict, so the loader refuses it
    # too: an editor must not call it fine.
    document = _shipped()
    document["bots"][1]["limits"]["lane_queue_size"] = "${QUEUE:-1000}"
    assert _errors(validator, document) != []
    document = _shipped()
    document["bots"][0]["enabled"] = "${ENABLED}"
    assert _errors(validator, document) != []


def test_a_room_is_a_bare_id_or_a_mapping(validator: jsonschema.Draft202012Validator) -> None:
    document = _shipped()
    document["bots"][0]["rooms"] = ["lobby", {"id": "vip", "channel": "chat:other:vip"}]
    assert _errors(validator, document) == []
    document["bots"][0]["rooms"] = [{"id": "vip", "chanel": "chat:other:vip"}]
    assert _errors(validator, document) != []


def test_settings_stay_free_form(validator: jsonschema.Draft202012Validator) -> None:
    document = _shipped()
    document["bots"][0]["settings"]["anything"] = {"nested": [1, "two"]}
    assert _errors(validator, document) == []
