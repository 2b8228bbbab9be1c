"""The ``state:`` section: where ``ctx.state`` lives (a SQLite file or memory)."""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from botkit.config._errors import describe
from botkit.config._section import Section

__all__ = ["DEFAULT_STATE_PATH", "StateConfig"]

DEFAULT_STATE_PATH = ".botkit/state.sqlite"


class StateConfig(Section):
    """Where ``ctx.state`` lives: a SQLite file (the default; the scheduler's jobs share it), or
    memory (lost at exit; for tests). ``path`` is stored resolved."""

    backend: Literal["sqlite", "memory"] = Field(default="sqlite",
                                                 description="sqlite or memory")
    path: Path = Field(default=Path(DEFAULT_STATE_PATH), validate_default=True,
                       description=f"a file path, e.g. {DEFAULT_STATE_PATH}")

    @field_validator("backend", mode="before")
    @classmethod
    def _check_backend(cls, value: Any) -> Any:
        if isinstance(value, str) and value in ("sqlite", "memory"):
            return value
        got = repr(value) if isinstance(value, str) else describe(value)
        raise ValueError("expected sqlite (a file that survives restarts) or memory (lost at "
                         f"exit, for tests), got {got}")

    @field_validator("path", mode="before")
    @classmethod
    def _resolve_path(cls, value: Any, info: ValidationInfo) -> Path:
        if not isinstance(value, str | PurePath) or not str(value).strip():
            got = "an empty string" if isinstance(value, str) else describe(value)
            raise ValueError(f"expected a file path, e.g. {DEFAULT_STATE_PATH}, got {got}")
        # Like *_file paths: relative to the config file, so the bots find their state whatever
        # directory they are started from. Without a context (a config built in code): the cwd.
        base = (info.context or {}).get("base_dir")
        path = Path(value).expanduser()
        return path if path.is_absolute() else Path(base or Path.cwd()) / path

