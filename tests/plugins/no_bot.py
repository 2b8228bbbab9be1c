"""A test plugin module that forgot to create its Bot."""

from __future__ import annotations

greeting = "hello"
