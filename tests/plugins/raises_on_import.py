"""A test plugin that fails while it is imported."""

from __future__ import annotations

raise RuntimeError("plugin exploded on import")
