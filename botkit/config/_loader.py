"""Loading bots.yaml: read, parse with lines, expand, validate, and locate every error."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from botkit.config._errors import describe, translate, without_inputs
from botkit.config._expand import Expander
from botkit.config._models import BotConfig, BotsConfig
from botkit.config._source import combine_errors, read_yaml
from botkit.errors import ConfigError

__all__ = ["load_config", "parse_config", "validate_settings"]

ModelT = TypeVar("ModelT", bound=BaseModel)


def load_config(path: str | os.PathLike[str], *,
                environ: Mapping[str, str] | None = None) -> BotsConfig:
    """Load and validate a bots.yaml file.

    ``${VAR}`` references are expanded from ``environ`` (default: ``os.environ``); relative
    ``*_file`` paths are read relative to the file's directory. Every problem raises ConfigError
    located at ``file:line: field``.
    """
    shown = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # -sig: tolerate a BOM from Windows
    except UnicodeDecodeError:
        raise ConfigError("the file is not UTF-8 text", path=shown) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file: {exc.strerror or exc}",
                          path=shown) from exc
    return parse_config(text, source=shown, environ=environ, base_dir=Path(path).parent)


def parse_config(text: str, *, source: str = "<string>",
                 environ: Mapping[str, str] | None = None,
                 base_dir: str | os.PathLike[str] | None = None) -> BotsConfig:
    """Validate bots.yaml given as text; ``source`` names it in errors, ``base_dir`` (default:
    the current directory) anchors relative paths (``*_file``, ``state.path``)."""
    data, source_map = read_yaml(text, source)
    if data is None:
        raise ConfigError("the file is empty; it needs an 'xshathra:' mapping and a 'bots:' list",
                          path=source)
    if not isinstance(data, dict):
        raise source_map.error((), "the top level must be a mapping with 'xshathra:' and "
                                   f"'bots:' keys, got {describe(data)}")
    base = Path.cwd() if base_dir is None else Path(base_dir)
    expander = Expander(source_map, os.environ if environ is None else environ, base)
    expanded = expander.expand(data)
    if expander.errors:
        raise combine_errors(expander.errors)
    try:
        # base_dir also anchors relative paths inside the schema (state.path).
        config = BotsConfig.model_validate(expanded, context={"base_dir": base})
    except ValidationError as exc:
        raise translate(exc.errors(), source_map, BotsConfig) from without_inputs(
            exc, source_map, BotsConfig)
    source_map.pack()
    config._source = source_map
    return config


def validate_settings(config: BotsConfig, bot: BotConfig, model: type[ModelT]) -> ModelT:
    """Validate ``bot.settings`` against a plugin's settings ``model``.

    Errors are located inside the bot's ``settings:`` mapping in the file ``config`` came from.
    Unknown keys are refused, as everywhere in bots.yaml, unless the model says
    ``extra="allow"``: pydantic ignores them by default, which would hide a mistyped setting
    behind its default value.
    """
    prefix = ("bots", _index_of(config, bot), "settings")
    unknown = list(_unknown_settings(bot.settings, model))
    try:
        settings = model.model_validate(bot.settings)
    except ValidationError as exc:
        raise translate([*unknown, *exc.errors()], config.source, model,
                        prefix) from without_inputs(exc, config.source, model, prefix)
    if unknown:
        raise translate(unknown, config.source, model, prefix)
    return settings


def _index_of(config: BotsConfig, bot: BotConfig) -> int:
    """Where ``bot`` is in ``config``: by identity, else by name (names are unique), so that a
    ``model_copy()`` of a bot is still found."""
    for index, candidate in enumerate(config.bots):
        if candidate is bot:
            return index
    for index, candidate in enumerate(config.bots):
        if candidate.name == bot.name:
            return index
    raise ValueError(f"bot {bot.name!r} is not part of this config")


def _unknown_settings(settings: Mapping[str, Any],
                      model: type[BaseModel]) -> Iterator[ErrorDetails]:
    if model.model_config.get("extra") in ("allow", "forbid"):
        return  # allowed, or pydantic reports them itself
    known = set(model.model_fields)
    known.update(field.alias for field in model.model_fields.values() if field.alias)
    for key, value in settings.items():
        if key not in known:
            yield {"type": "extra_forbidden", "loc": (key,),
                   "msg": "Extra inputs are not permitted", "input": value}
