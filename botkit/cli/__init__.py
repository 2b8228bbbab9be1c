"""The ``botkit`` command: main (the subcommands) and logs (text and JSON logging)."""

from __future__ import annotations

from botkit.cli.main import main, run_main

__all__ = ["main", "run_main"]
