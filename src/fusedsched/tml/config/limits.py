"""What a config may be: at most 1 MiB of text, 100 levels deep, 1,048,576 values.

Every source is held to these bounds before the work that grows with it (parsing, validating,
explaining its errors), so any config, whatever its size or shape, is answered in time and memory
bounded by them; each refusal is a ``ValueError`` naming the source, the value and the limit.

- **Size** (:data:`MAX_CONFIG_BYTES`): the UTF-8 bytes of a text or file, checked before it is
  parsed (a file's size before it is read).
- **Depth** (:data:`MAX_CONFIG_DEPTH`): mappings and lists inside one another (``{a: [1]}`` is 2
  deep), checked on a YAML text's events before its nodes are built (their builder recurses once
  a level), and on the data itself: JSON as decoded, a dict as given, YAML with its aliases
  followed.
- **Values** (:data:`MAX_CONFIG_VALUES`): the mappings, lists and scalars of the data, an alias
  (a shared reference) counted as every value it stands for, so a "billion laughs" is refused;
  one per byte of the size limit, more than any text within that limit writes out without aliases.
  Data that contains itself (``&a [*a]``) is refused too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from ...schedule.errors import dotted

__all__ = ["MAX_CONFIG_BYTES", "MAX_CONFIG_DEPTH", "MAX_CONFIG_VALUES", "check_shape", "check_size", "check_yaml_depth",
           "json_depth_error", "text_size"]

#: The most bytes a config's text (or file) may have: 1 MiB, far more than any optimizer config
#: (or the training YAML around it) needs.
MAX_CONFIG_BYTES = 1024 * 1024
#: The most levels of mappings and lists a config may nest.
MAX_CONFIG_DEPTH = 100
#: The most values (mappings, lists and scalars) a config may hold, an alias counted as the values
#: it stands for: one per byte of :data:`MAX_CONFIG_BYTES`.
MAX_CONFIG_VALUES = MAX_CONFIG_BYTES

_COLLECTIONS = (Mapping, list, tuple)
_CHUNK = 1 << 20


def text_size(text: str) -> int:
    """``len(text.encode("utf-8"))``, encoding at most a MiB at a time."""
    return sum(len(text[i:i + _CHUNK].encode("utf-8", "surrogatepass")) for i in range(0, len(text), _CHUNK))


def check_size(size: int | None, where: str) -> None:
    """Refuse ``size`` bytes over :data:`MAX_CONFIG_BYTES` (``None``: more, by how much unknown)."""
    if size is None or size > MAX_CONFIG_BYTES:
        limit = f"{MAX_CONFIG_BYTES:,} bytes ({MAX_CONFIG_BYTES / 2**20:g} MiB)"
        raise ValueError(f"{where} is {'over' if size is None else f'{size:,} bytes, more than'} the {limit} a config may have")


def _too_deep(where: str, depth: int, at: str, at_least: bool = False) -> ValueError:
    return ValueError(f"{where} nests {'at least ' if at_least else ''}{depth:,} levels deep, more than the "
                      f"{MAX_CONFIG_DEPTH} a config may have (level {MAX_CONFIG_DEPTH + 1} {at})")


def _opens_at(line: int, column: int) -> str:
    return f"opens at line {line + 1}, column {column + 1}"


def check_yaml_depth(text: str, where: str, loader: type) -> None:
    """Refuse a YAML text nested deeper than :data:`MAX_CONFIG_DEPTH`, from its events alone.

    The parser is a loop (libyaml's and PyYAML's), the composer that builds nodes recurses once a
    level: this runs before it. A YAML error is raised as it is, unless the text already went too
    deep before it (then the depth is "at least" what was read).
    """
    depth = deepest = 0
    mark = None
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                deepest = max(deepest, depth)
                if depth > MAX_CONFIG_DEPTH and mark is None:
                    mark = event.start_mark
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        if mark is None:
            raise
        raise _too_deep(where, deepest, _opens_at(mark.line, mark.column), at_least=True) from None
    if mark is not None:
        raise _too_deep(where, deepest, _opens_at(mark.line, mark.column))


_JSON_MARKS = re.compile(r'[\[\]{}"\\]')


def json_depth_error(text: str, where: str) -> ValueError:
    """The error for a JSON text too deep for ``json.loads`` (which raised ``RecursionError``):
    its depth, counted over brackets outside strings, and where level ``MAX_CONFIG_DEPTH + 1`` opens."""
    depth = deepest = 0
    at = -1
    in_string, escaped = False, -1
    for match in _JSON_MARKS.finditer(text):
        mark, i = match.group(), match.start()
        if in_string:
            if i == escaped:  # the character after a backslash
                continue
            if mark == "\\":
                escaped = i + 1
            elif mark == '"':
                in_string = False
        elif mark == '"':
            in_string = True
        elif mark in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if depth > MAX_CONFIG_DEPTH and at < 0:
                at = i
        elif mark in "]}":
            depth -= 1
    if at < 0:  # json.loads ran out of stack above the limit: deeper than the limit all the same
        return ValueError(f"{where} nests {deepest:,} levels deep, too deep to decode")
    line = text.count("\n", 0, at)
    return _too_deep(where, deepest, _opens_at(line, at - text.rfind("\n", 0, at) - 1))


def _children(node: Any) -> list[tuple[Any, Any]]:
    return list(node.items()) if isinstance(node, Mapping) else list(enumerate(node))


def _the_value_at(loc: tuple[Any, ...]) -> str:
    return f"the value at {dotted(loc)}" if loc else "the top level"


def check_shape(data: Any, where: str) -> None:
    """Refuse ``data`` that contains itself, holds more than :data:`MAX_CONFIG_VALUES` values or
    nests deeper than :data:`MAX_CONFIG_DEPTH`, aliases (shared references) followed.

    One walk that reads each distinct mapping and list once (a shared one's counts are kept by
    identity), so a billion laughs costs its written size, not its expanded one. A count over the
    limit names the first value found over it (one whose parts are each within it).
    """
    done: dict[int, tuple[int, int]] = {}  # id -> (its depth, its values)
    open_at: dict[int, tuple[Any, ...]] = {}  # the collections the walk is inside, with their paths
    stack: list[tuple[Any, tuple[Any, ...], list[Any] | None]] = [(data, (), None)]
    while stack:
        node, loc, kids = stack.pop()
        if kids is not None:  # its children are done
            depth = 1 + max((done[id(c)][0] for c in kids if isinstance(c, _COLLECTIONS)), default=0)
            values = 1 + sum(done[id(c)][1] if isinstance(c, _COLLECTIONS) else 1 for c in kids)
            done[id(node)] = (depth, values)
            del open_at[id(node)]
            if values > MAX_CONFIG_VALUES:
                raise ValueError(f"{where}: {_the_value_at(loc)} holds {values:,} values (an alias counts as the values "
                                 f"it stands for), more than the {MAX_CONFIG_VALUES:,} a config may hold")
            continue
        if not isinstance(node, _COLLECTIONS) or id(node) in done:
            continue
        if id(node) in open_at:
            raise ValueError(f"{where}: the value at {dotted(loc)} is {_the_value_at(open_at[id(node)])} again: "
                             "a config cannot contain itself")
        open_at[id(node)] = loc
        children = _children(node)
        stack.append((node, loc, [child for _, child in children]))
        stack.extend((child, (*loc, k), None) for k, child in reversed(children) if isinstance(child, _COLLECTIONS))
    if isinstance(data, _COLLECTIONS) and done[id(data)][0] > MAX_CONFIG_DEPTH:
        path, node = [], data
        for _ in range(MAX_CONFIG_DEPTH):  # down the deepest branch to level MAX_CONFIG_DEPTH + 1
            k, node = max(((k, c) for k, c in _children(node) if isinstance(c, _COLLECTIONS)),
                          key=lambda kc: done[id(kc[1])][0])
            path.append(k)
        shown = dotted(path[:4]) + ("..." if len(path) > 4 else "")
        raise _too_deep(where, done[id(data)][0], f"is at {shown}")
