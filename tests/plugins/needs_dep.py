"""A test plugin that imports a module which is not installed, and whose name starts with that
module's name: the error must blame the missing dependency, not the plugin."""

from __future__ import annotations

import tests.plugins.needs  # noqa: F401
from botkit import Bot

bot = Bot("needs_dep")
