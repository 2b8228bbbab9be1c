"""``python -m botkit`` is the ``botkit`` command."""

from botkit.cli import run_main

run_main()
