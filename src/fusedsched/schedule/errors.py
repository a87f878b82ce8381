"""A config's validation errors, the likely cause first.

pydantic reports a misspelt required field as two errors, the required field missing and the
unknown key, in the model's field order; and a schedule whose fields lost their indentation
(``cosine_annealing:`` empty, its fields beside it) as unknown keys or a wrong type one level up.
``causes_first`` puts first: such a schedule (one new error naming the empty kind and the stray
keys), then the unknown keys (with the missing required field each one likely misspells), then
pydantic's other errors. The CLI reports them all in one line, each with its path;
``load_config`` raises them all as a ``pydantic.ValidationError`` (``explained``).

The search reads each distinct mapping once, however many paths reach it (YAML aliases share
one), so its work is bounded by the config as written, not as expanded; ``repr_start`` writes
the start of an input's repr with work bounded the same way.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pydantic
from pydantic_core import PydanticCustomError

from .kinds import LearningRate

__all__ = ["NOT_INDENTED", "causes_first", "dotted", "explained", "one_line", "repr_start"]

#: The error type of a schedule whose fields are not indented under its kind.
NOT_INDENTED = "schedule_not_indented"
Loc = tuple[Any, ...]


def one_line(error: BaseException) -> str:
    """``error``'s message on one line (its whitespace runs, newlines included, as single spaces)."""
    return " ".join(str(error).split())


def dotted(loc: Sequence[Any], prefix: Sequence[Any] = ()) -> str:
    """``a.b.0.c``, or ``top level`` for the empty path."""
    return ".".join(map(str, [*prefix, *loc])) or "top level"


def _kind_fields() -> dict[str, set[str]]:
    """Each schedule kind that is a model (all but ``constant``), with its field names."""
    fields = {}
    for kind in LearningRate.KINDS:
        for arg in typing.get_args(LearningRate.model_fields[kind].annotation):
            if isinstance(arg, type) and issubclass(arg, pydantic.BaseModel):
                fields[kind] = set(arg.model_fields)
    return fields


def _mappings(data: Any) -> Iterator[tuple[Loc, list[tuple[Any, Any]]]]:
    """Each distinct mapping in ``data`` once, depth first, with the first path that reaches it and
    its items: a mapping shared by many paths (YAML aliases) is walked once, one holding itself ends."""
    seen: set[int] = set()
    stack: list[tuple[Loc, Any]] = [((), data)]
    while stack:
        loc, node = stack.pop()
        if not isinstance(node, (Mapping, list)) or id(node) in seen:
            continue
        seen.add(id(node))
        children = list(node.items()) if isinstance(node, Mapping) else list(enumerate(node))
        if isinstance(node, Mapping):
            yield loc, children
        stack.extend(((*loc, key), child) for key, child in reversed(children) if isinstance(child, (Mapping, list)))


def unindented_schedule(data: Any) -> tuple[Loc, str, list[str]] | None:
    """The first mapping in ``data`` (depth first) holding an empty (null) schedule kind beside
    keys that are that kind's fields: ``(the mapping's loc, the kind, those keys)``; None if none.

    Each distinct mapping is read once, however many paths reach it."""
    fields = _kind_fields()
    for loc, items in _mappings(data):
        for kind, value in items:
            stray = [k for k, _ in items if k in fields.get(kind, ())] if value is None else []
            if stray:
                return loc, kind, stray
    return None


def repr_start(value: Any, width: int = 60) -> str:
    """``repr(value)[:width]`` for plain data (dicts, lists, tuples and scalars) without building the
    whole repr: the work is bounded by ``width``, not by the value's size or its shared parts."""
    out: list[str] = []
    budget = width

    def put(text: str) -> bool:
        nonlocal budget
        out.append(text[:budget])
        budget -= len(out[-1])
        return budget > 0

    def walk(node: Any) -> bool:  # False: the width is filled; each level writes a bracket first
        if type(node) is dict:
            if not put("{"):
                return False
            for i, (key, item) in enumerate(node.items()):
                if not (put(", " if i else "") and walk(key) and put(": ") and walk(item)):
                    return False
            return put("}")
        if type(node) in (list, tuple):
            if not put("[" if type(node) is list else "("):
                return False
            for i, item in enumerate(node):
                if not (put(", " if i else "") and walk(item)):
                    return False
            return put("]" if type(node) is list else ("," if len(node) == 1 else "") + ")")
        return put(repr(node))

    walk(value)
    return "".join(out)


def causes_first(error: pydantic.ValidationError, data: Any, prefix: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """``error.errors()`` for ``data``, the likely cause first (see the module); ``prefix``: the
    path of ``data`` in its file, for the messages. An unknown key close to a required field
    missing beside it gets ``hint`` (that field's name) and says so in its ``msg``."""
    errors = error.errors()
    lead = []
    found = unindented_schedule(data)
    if found is not None:
        at, kind, stray = found
        holder = f"{dotted(at, prefix)} has" if at or prefix else "the top level has"
        lead.append({"type": NOT_INDENTED, "loc": (*at, kind), "input": None, "msg": (
            f"{dotted((*at, kind), prefix)} is empty and {holder} stray keys {', '.join(map(repr, stray))}: "
            f"are the schedule's fields indented under {kind}?")})
        explained_here = {(*at, key) for key in (kind, *stray)}
        errors = [e for e in errors if tuple(e["loc"][: len(at) + 1]) not in explained_here]
    missing: dict[Loc, list[str]] = {}
    for e in errors:
        if e["type"] == "missing":
            missing.setdefault(tuple(e["loc"][:-1]), []).append(str(e["loc"][-1]))
    unknown, rest = [], []
    for e in errors:
        if e["type"] != "extra_forbidden":
            rest.append(e)
            continue
        close = difflib.get_close_matches(str(e["loc"][-1]), missing.get(tuple(e["loc"][:-1]), []), n=1)
        if close:
            e = {**e, "hint": close[0], "msg": f"{e['msg']} (unknown key {e['loc'][-1]!r}; did you mean {close[0]!r}?)"}
        unknown.append(e)
    return lead + unknown + rest


def _line(e: dict[str, Any]) -> dict[str, Any]:
    """``e`` as pydantic builds it: its own type where that rebuilds, a custom one otherwise."""
    line = {"type": e["type"], "loc": tuple(e["loc"]), "input": e["input"], **({"ctx": e["ctx"]} if "ctx" in e else {})}
    if "hint" not in e:
        try:
            pydantic.ValidationError.from_exception_data("check", [line])
            return line
        except (TypeError, ValueError, KeyError):
            pass
    return {"type": PydanticCustomError(e["type"], e["msg"]), "loc": tuple(e["loc"]), "input": e["input"]}


def explained(error: pydantic.ValidationError, data: Any, title: str | None = None) -> pydantic.ValidationError:
    """``error`` with its errors as ``causes_first`` orders them, and ``title`` for its title (the
    first line's ``... for <title>``) when given; ``error`` itself if neither changes it."""
    errors = causes_first(error, data)
    title = error.title if title is None else title
    if errors == error.errors() and title == error.title:
        return error
    return pydantic.ValidationError.from_exception_data(title, [_line(e) for e in errors])
