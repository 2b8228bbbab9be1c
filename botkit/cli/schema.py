"""``botkit schema``: print the JSON Schema of bots.yaml (see docs/editors.md)."""

from __future__ import annotations

import sys

from botkit.config._jsonschema import bots_json_schema_text

__all__ = ["print_schema"]


def print_schema() -> int:
    sys.stdout.write(bots_json_schema_text())
    return 0
