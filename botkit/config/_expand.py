"""``${VAR}`` interpolation and ``*_file`` indirection, applied to parsed YAML before validation.

Both run on plain values (dicts, lists, strings) rather than on the models so that they work the
same everywhere, including inside the free-form ``settings`` of a bot, and so that every problem
can still be located through the source map. Interpolation runs first, so a file path may itself
use a variable (``server_api_key_file: ${SECRETS_DIR}/xshathra``); file contents are taken
literally, never interpolated, because secrets may well contain ``$``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from botkit.config._source import Loc, SourceMap
from botkit.errors import ConfigError

__all__ = ["Expander"]

_REFERENCE = re.compile(
    r"\$\$\{"                                                     # $${ -> a literal ${
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|\$\{"                                                      # any other ${ is a mistake
)
_FILE_SUFFIX = "_file"
_SNIPPET_LENGTH = 30


class Expander:
    """Expands one parsed document. Problems are collected in ``errors`` rather than raised, so
    that a user who forgot three variables hears about all three at once."""

    def __init__(self, source: SourceMap, environ: Mapping[str, str], base_dir: Path) -> None:
        self.errors: list[ConfigError] = []
        self._source = source
        self._environ = environ
        self._base_dir = base_dir

    def expand(self, value: Any, loc: Loc = ()) -> Any:
        """A copy of ``value`` with variables expanded and ``*_file`` keys resolved.

        It builds new containers instead of editing in place: YAML aliases share objects, and
        an in-place edit would expand a shared value twice.
        """
        if isinstance(value, str):
            return self._interpolate(value, loc)
        if isinstance(value, Mapping):
            return self._expand_mapping(value, loc)
        if isinstance(value, list):
            return [self.expand(item, (*loc, index)) for index, item in enumerate(value)]
        return value

    def _expand_mapping(self, mapping: Mapping[Any, Any], loc: Loc) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key, value in mapping.items():
            expanded = self.expand(value, (*loc, key))
            target = _file_target(key)
            if target is None:
                result[key] = expanded
            elif target in mapping:
                self._error((*loc, key), f"give either {target!r} or {key!r}, not both")
            else:
                content = self._read_file(expanded, (*loc, key))
                if content is not None:
                    result[target] = content
                    self._provide((*loc, key), (*loc, target))
        return result

    def _provide(self, file_loc: Loc, target_loc: Loc) -> None:
        """Errors about the value read from a file point at the ``*_file`` line, and never quote
        the value: files are how secrets are handed over."""
        line = self._source.line_of(file_loc)
        if line is not None:
            self._source.lines[target_loc] = line
        self._source.hidden.add(target_loc)

    def _read_file(self, value: Any, loc: Loc) -> str | None:
        if not isinstance(value, str) or not value:
            self._error(loc, "expected the path of a file to read the value from")
            return None
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = self._base_dir / path
        where = f"{str(path)!r}"
        if str(path) != value:
            where += f" (written as {value!r}, relative to the config file's directory)"
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            # The codec's message quotes bytes of the file, which may be the secret: say less.
            self._error(loc, f"cannot read {where}: the file is not UTF-8 text")
        except OSError as exc:
            self._error(loc, f"cannot read {where}: {exc.strerror or type(exc).__name__}")
        return None

    def _interpolate(self, text: str, loc: Loc) -> str:
        if "${" not in text:
            return text
        from_environ = False

        def replace(match: re.Match[str]) -> str:
            nonlocal from_environ
            name, default = match.group("name"), match.group("default")
            if match.group() == "$${":
                return "${"
            if name is None:
                self._error(loc, _malformed(text, match.start()))
                return ""
            if default is not None and "${" in default:
                self._error(loc, f"nested references like ${{{name}:-${{...}}}} are not "
                                 "supported; give a plain default")
                return ""
            value = self._environ.get(name)
            if value is not None and (value or default is None):
                from_environ = True
                return value
            if default is not None:
                # Shell semantics: ':-' also replaces a variable that is set but empty.
                return default
            self._error(loc, f"environment variable {name} is not set "
                             f"(set it, or write ${{{name}:-default}})")
            return ""

        expanded = _REFERENCE.sub(replace, text)
        if from_environ:
            # The value may now hold a secret (an API key from the environment): never quote it.
            self._source.hidden.add(loc)
        return expanded

    def _error(self, loc: Loc, message: str) -> None:
        self.errors.append(self._source.error(loc, message))


def _file_target(key: Any) -> str | None:
    """``server_api_key_file`` -> ``server_api_key``; None for keys that are not file keys."""
    if isinstance(key, str) and key.endswith(_FILE_SUFFIX) and len(key) > len(_FILE_SUFFIX):
        return key.removesuffix(_FILE_SUFFIX)
    return None


def _malformed(text: str, start: int) -> str:
    end = text.find("}", start)
    snippet = text[start:end + 1] if end != -1 else text[start:]
    if len(snippet) > _SNIPPET_LENGTH:
        snippet = snippet[:_SNIPPET_LENGTH] + "..."
    return (f"malformed variable reference {snippet!r}: write ${{NAME}} or ${{NAME:-default}}, "
            "or $${ for a literal ${")
