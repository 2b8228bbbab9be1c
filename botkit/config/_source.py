"""Reading YAML while remembering where every value was written.

PyYAML's constructors throw positions away, so the document is first *composed* into nodes (which
carry ``start_mark``), indexed into a :class:`SourceMap` from field paths to line numbers, and only
then constructed into plain Python values with the safe constructor. Composing first is also where
duplicate keys are caught: the constructor silently keeps the last one, which hides typos.
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

import yaml
from yaml.reader import ReaderError

from botkit.errors import ConfigError

__all__ = ["Loc", "SourceMap", "combine_errors", "format_loc", "read_yaml"]

Loc = tuple[str | int, ...]
"""A path to a value: ``("bots", 0, "rooms", 1)`` is the second room of the first bot."""

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_CONTEXT_VERB = re.compile(r"^while (?:scanning|parsing) ")  # "while scanning a quoted scalar"
# Aliases let a 1 KB document stand for billions of values ("billion laughs"), and everything
# after the composer (this index, ${VAR} expansion, validation) walks the values as a tree. A
# real bots.yaml has a few thousand; the walk stops long before the budget costs much.
MAX_VALUES = 100_000
MAX_DEPTH = 64


def format_loc(loc: Sequence[str | int]) -> str:
    """``("bots", 0, "rooms", 1)`` -> ``bots[0].rooms[1]``, the way a user reads the file."""
    text = ""
    for part in loc:
        if isinstance(part, str) and _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        elif isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:  # keys that need quoting, and keys YAML read as true/false
            text += f"[{part!r}]"
    return text


class SourceMap:
    """Where each value of a config came from: the file, and the line of every field path.

    ``hidden`` holds the paths whose values came from the environment or a ``*_file``: such values
    may be secrets, so error messages must not quote them. The loader fills both while loading;
    afterwards the map is only read, and :meth:`pack` keeps the lines in a compact form until
    an error needs them (a tuple and a dict entry per path cost ~1.5 KiB per bot in memory for
    the process's life, for messages most runs never print; bench/ S4).
    """

    __slots__ = ("_lines", "_packed", "hidden", "path")

    def __init__(self, path: str, lines: dict[Loc, int] | None = None,
                 hidden: set[Loc] | None = None) -> None:
        self.path = path
        self._lines: dict[Loc, int] | None = lines if lines is not None else {}
        self._packed: tuple[str, array[int]] | None = None
        self.hidden: set[Loc] = hidden if hidden is not None else set()

    def __repr__(self) -> str:
        return f"SourceMap({self.path!r})"

    @property
    def lines(self) -> dict[Loc, int]:
        lines = self._lines
        if lines is None:
            assert self._packed is not None
            paths, numbers = self._packed
            lines = self._lines = {tuple(loc): line
                                   for loc, line in zip(json.loads(paths), numbers, strict=True)}
            self._packed = None
        return lines

    def pack(self) -> None:
        """Hold the lines as one JSON text of the paths and an array of the line numbers (the
        first read of :attr:`lines` unpacks them)."""
        lines = self._lines
        if lines:
            self._packed = (json.dumps([list(loc) for loc in lines], separators=(",", ":")),
                            array("I", lines.values()))
            self._lines = None

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of ``loc``, or of its nearest parent that was written in the file."""
        key = tuple(loc)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get(())

    def is_hidden(self, loc: Sequence[str | int]) -> bool:
        return tuple(loc) in self.hidden

    def error(self, loc: Sequence[str | int], message: str) -> ConfigError:
        """A ConfigError located at ``loc``, for code that finds a problem in a loaded config."""
        return ConfigError(message, path=self.path, line=self.line_of(loc),
                           field=format_loc(loc) or None)


def combine_errors(errors: Iterable[ConfigError]) -> ConfigError:
    """One ConfigError reporting every problem, one per line, in file order.

    The result carries the location of the first problem so that callers (and editors) can jump
    to it; the others follow on their own lines, fully located.
    """
    ordered = sorted(errors, key=lambda e: (e.line is None, e.line or 0))
    if not ordered:
        raise ValueError("combine_errors() needs at least one error")
    first, rest = ordered[0], ordered[1:]
    if not rest:
        return first
    message = _message_of(first) + "".join(f"\n{error}" for error in rest)
    return ConfigError(message, path=first.path, line=first.line, field=first.field)


def _message_of(error: ConfigError) -> str:
    """The bare message of a ConfigError, without its ``file:line: field:`` prefix."""
    prefix = str(ConfigError("", path=error.path, line=error.line, field=error.field))
    return str(error).removeprefix(prefix)


def read_yaml(text: str, path: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document safely; return its value and the lines of its fields.

    Returns ``(None, source)`` for an empty document. Raises ConfigError for broken YAML,
    duplicate keys and recursive aliases.
    """
    source = SourceMap(path)
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None, source
        _Indexer(loader, source).run(node)
        return loader.construct_document(node), source
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, path) from exc
    except RecursionError:
        # The composer recurses once per level: "[[[[..." thousands deep.
        raise ConfigError(f"the document is nested too deeply (more than {MAX_DEPTH} levels)",
                          path=path) from None
    finally:
        if loader is not None:
            loader.dispose()


class _Indexer:
    """Walks the node tree: records the line of every path and refuses duplicate keys."""

    def __init__(self, loader: yaml.SafeLoader, source: SourceMap) -> None:
        self._loader = loader
        self._source = source
        self._errors: list[ConfigError] = []
        self._stack: list[yaml.Node] = []
        self._visited = 0

    def run(self, root: yaml.Node) -> None:
        self._source.lines[()] = root.start_mark.line + 1
        self._visit(root, ())
        if self._errors:
            raise combine_errors(self._errors)

    def _visit(self, node: yaml.Node, loc: Loc) -> None:
        self._visited += 1
        if self._visited > MAX_VALUES:
            # Raised at once, not collected: going on is what would hang.
            # At the top-level key holding the explosion: every deeper line is that of an
            # anchor (an alias's node is its anchor's), which would point the reader elsewhere.
            raise ConfigError(
                f"the document expands to more than {MAX_VALUES} values "
                "through its aliases (*name); bots.yaml never needs that many, so write the "
                "values out or use fewer aliases", path=self._source.path,
                line=self._source.line_of(loc[:1]), field=format_loc(loc[:1]) or None)
        if len(self._stack) >= MAX_DEPTH:
            raise self._at(node, loc, f"values are nested more than {MAX_DEPTH} levels deep")
        if any(node is seen for seen in self._stack):
            # An alias to one of its own ancestors: the value would be infinitely deep.
            self._errors.append(self._at(node, loc, "an alias refers to a value that contains "
                                                    "it; recursive values are not supported"))
            return
        self._stack.append(node)
        if isinstance(node, yaml.MappingNode):
            self._visit_mapping(node, loc)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._source.lines.setdefault((*loc, index), item.start_mark.line + 1)
                self._visit(item, (*loc, index))
        self._stack.pop()

    def _visit_mapping(self, node: yaml.MappingNode, loc: Loc) -> None:
        first_line: dict[Any, int] = {}
        merged: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.append(value_node)
                continue
            key = self._key(key_node)
            if key is None:
                continue  # not a possible field name; the constructor or pydantic will say why
            line = key_node.start_mark.line + 1
            if key in first_line:
                self._errors.append(self._at(
                    key_node, (*loc, key),
                    f"duplicate key {key!r} (first given on line {first_line[key]}); "
                    "YAML would silently keep only the last one, so remove one of them"))
                continue
            first_line[key] = line
            self._source.lines[(*loc, key)] = line
            self._visit(value_node, (*loc, key))
        # '<<: *defaults' merges: keys written in this mapping win, so index them last.
        for value_node in merged:
            is_list = isinstance(value_node, yaml.SequenceNode)
            targets = value_node.value if is_list else [value_node]
            for target in targets:
                if isinstance(target, yaml.MappingNode):
                    self._visit_merged(target, loc)

    def _visit_merged(self, node: yaml.MappingNode, loc: Loc) -> None:
        for key_node, value_node in node.value:
            key = self._key(key_node)
            if key is not None and (*loc, key) not in self._source.lines:
                self._source.lines[(*loc, key)] = key_node.start_mark.line + 1
                self._visit(value_node, (*loc, key))

    def _key(self, node: yaml.Node) -> str | int | None:
        """The key as the constructor will build it; None for keys that can't be field names."""
        if not isinstance(node, yaml.ScalarNode):
            return None
        key = self._loader.construct_object(node)
        return key if isinstance(key, str | int) else None  # bool is an int: 'on:' is True

    def _at(self, node: yaml.Node, loc: Loc, message: str) -> ConfigError:
        return ConfigError(message, path=self._source.path, line=node.start_mark.line + 1,
                           field=format_loc(loc) or None)


def _yaml_error(exc: yaml.YAMLError, text: str, path: str) -> ConfigError:
    """Turn a PyYAML error into a one-line, located message (no traceback, no excerpt)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        _drop_snippets(exc, path)
        mark, start = exc.problem_mark or exc.context_mark, exc.context_mark
        parts = [part for part in (exc.context, exc.problem) if part]
        message = "invalid YAML: " + ": ".join(parts or ["cannot parse"])
        if "'\\t'" in message:
            message += " (YAML indents with spaces; replace the tab)"
        if mark is None:
            return ConfigError(message, path=path)
        where = f"column {mark.column + 1}"
        if start is not None and start.line != mark.line:
            # An unclosed quote or bracket is reported where the parser gave up, often the end
            # of the file; where it was opened is what the user needs to look at.
            what = _CONTEXT_VERB.sub("", exc.context or "") or "it"
            where += f"; {what} started on line {start.line + 1}"
        return ConfigError(f"{message} ({where})", path=path, line=mark.line + 1)
    if isinstance(exc, ReaderError):
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        return ConfigError(f"invalid YAML: {exc.reason} (character #x{exc.character:04x})",
                           path=path, line=line)
    return ConfigError(f"invalid YAML: {exc}", path=path)


def _drop_snippets(exc: yaml.MarkedYAMLError, path: str) -> None:
    """Make the PyYAML error (chained as the cause) print no excerpt of the file.

    Its text would otherwise quote the offending line, and that line may hold a secret written
    into the file; tracebacks end up in logs.
    """
    for mark in (exc.context_mark, exc.problem_mark):
        if mark is not None:
            mark.name, mark.buffer, mark.pointer = path, None, 0
