"""``python -m botkit`` is the ``botkit`` command."""

from botkit.cli.main import run_main

run_main()
