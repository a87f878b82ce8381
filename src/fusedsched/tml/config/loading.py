"""Loading a config model from a dict, a YAML/JSON file or YAML/JSON text, and dumping one.

A key written twice in a mapping is an error naming the key (and its line in YAML); every failure
to read or parse is a ``ValueError`` naming the source; an invalid config raises pydantic's
``ValidationError`` with its likely cause first (:func:`fusedsched.schedule.errors.explained`).
Every source is held to the limits of :mod:`.limits` (size, depth, values) first.

YAML is read by libyaml where PyYAML was built with it (several times faster than PyYAML's own
loader), else by PyYAML's own; a text libyaml refuses is read again by PyYAML's own, so both give
the same data, and a YAML error is always PyYAML's own message (libyaml's names no alias or anchor
and shows no line of the text).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

import pydantic
import yaml

from ...schedule.errors import explained, one_line, repr_start
from . import limits
from .schemas import OptimizerConfig, RecapOptimizerConfig, validate_optimizer_config

__all__ = ["dump_config", "load_config", "parse_config_text", "read_config_file"]

C = TypeVar("C", bound=pydantic.BaseModel)
_SUFFIXES = (".yaml", ".yml", ".json")



class _DuplicateKey(ValueError):
    """A mapping key written twice; the message names the key (and the line, for YAML)."""


def _unique_json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(f"duplicate key {key!r}")
        obj[key] = value
    return obj


class _UniqueKeys:
    """A YAML loader that refuses a key written twice in one mapping (mixed into a ``SafeLoader``).

    Keys brought in by a merge (``<<: *anchor``) may be overridden, as YAML allows.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._checked: set[int] = set()

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Runs before any merge rewrites node.value (and merges rewrite only through here), so the
        # first visit sees the keys as written.
        if id(node) not in self._checked:
            self._checked.add(id(node))
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: construct_mapping reports it
                    continue
                if first is not None:
                    raise _DuplicateKey(f"duplicate key {key!r} at line {line} (first at line {first})")
                seen[key] = line
        super().flatten_mapping(node)


class _UniqueKeyLoader(_UniqueKeys, yaml.SafeLoader):
    """PyYAML's own ``SafeLoader`` (pure Python), refusing a key written twice."""

    def save_possible_simple_key(self) -> None:
        # PyYAML's scanner checks every saved key (one per open flow collection) at each token, so
        # text nested n flow collections deep would cost n * n; past the depth limit, refused
        # anyway, no key is saved. libyaml stops at 1000 flow levels of its own.
        if self.flow_level <= limits.MAX_CONFIG_DEPTH:
            super().save_possible_simple_key()


if getattr(yaml, "__with_libyaml__", False):

    class _UniqueKeyCLoader(_UniqueKeys, yaml.CSafeLoader):
        """libyaml's ``CSafeLoader`` (a C parser, the same constructor), refusing a key written twice."""

    _YAML_LOADER: type = _UniqueKeyCLoader
else:
    _YAML_LOADER = _UniqueKeyLoader


def _load_yaml(text: str, where: str, loader: type | None = None) -> Any:
    """The YAML document in ``text``, read by ``loader`` (default :data:`_YAML_LOADER`).

    A text libyaml refuses is read again by PyYAML's own loader, whose data or error counts: the
    two give the same results, and PyYAML's messages name what libyaml's leave out.
    """
    loader = loader or _YAML_LOADER
    try:
        limits.check_yaml_depth(text, where, loader)  # before the composer recurses
        return yaml.load(text, Loader=loader)  # noqa: S506 (a SafeLoader)
    except _DuplicateKey as e:
        raise ValueError(f"{where}: {e}") from None
    except yaml.YAMLError as e:
        if loader is not _UniqueKeyLoader:
            return _load_yaml(text, where, _UniqueKeyLoader)
        raise ValueError(f"cannot parse {where} as YAML or JSON: {one_line(e)}") from None


def parse_config_text(text: str, where: str = "config text") -> Any:
    """The document in ``text`` (JSON, else YAML); a key written twice in a mapping is an error.

    Raises:
        ValueError: the text is over the size limit (before it is parsed), nests too deep, holds
            too many values or itself (:mod:`.limits`), parses as neither, or repeats a key (named,
            with its line in YAML).
    """
    limits.check_size(limits.text_size(text), where)
    try:
        data = json.loads(text, object_pairs_hook=_unique_json_object)  # JSON first: PyYAML reads 1e-07 as a string
    except _DuplicateKey as e:
        raise ValueError(f"{where}: {e}") from None
    except RecursionError:
        raise limits.json_depth_error(text, where) from None
    except json.JSONDecodeError:
        data = _load_yaml(text, where)
    limits.check_shape(data, where)
    return data


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML or JSON config file, every failure a ``ValueError`` naming the path.

    Raises:
        ValueError: the path is missing or a directory, the file is over the size limit (refused
            before it is read: :data:`~.limits.MAX_CONFIG_BYTES`), cannot be read, is not UTF-8,
            does not parse, is over another limit (:mod:`.limits`), repeats a key in a mapping
            (named), is empty, or does not hold a mapping.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"config path {path} is a directory, not a file")
    where = f"config file {path}"
    try:
        with path.open("rb") as f:
            status = os.fstat(f.fileno())
            if stat.S_ISREG(status.st_mode):
                limits.check_size(status.st_size, where)  # before reading it
            raw = f.read(limits.MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(f"config file not found: {path}") from None
    except OSError as e:
        raise ValueError(f"cannot read config file {path}: {e.strerror or one_line(e)}") from None
    if len(raw) > limits.MAX_CONFIG_BYTES:  # not a regular file, or it grew
        limits.check_size(None, where)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"config file {path} is not UTF-8 text: byte 0x{raw[e.start]:02x} at offset {e.start}"
        ) from None
    data = parse_config_text(text, where)
    if data is None:
        raise ValueError(f"{where} is empty")
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: the document must be a mapping, got {type(data).__name__}: {repr_start(data)}")
    return data


def _names_a_path(text: str) -> bool:
    try:
        return bool(text.strip()) and "\n" not in text and (
            Path(text).exists() or text.strip().lower().endswith(_SUFFIXES)
        )
    except (OSError, ValueError):  # name too long, NUL byte
        return False


def _section(data: Any, section: str, where: str) -> Any:
    """Descend the dotted key path ``section``; a digit indexes a list (``tables.0.optimizer``)."""
    parts = section.split(".")
    for depth, key in enumerate(parts):
        at = ".".join(parts[:depth]) or "top level"
        if isinstance(data, Mapping) and key in data:
            data = data[key]
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            if isinstance(data, Mapping):
                found = f"found: {', '.join(map(str, data)) or 'nothing'}"
            elif isinstance(data, list):
                found = f"a list of {len(data)}"
            else:
                found = f"a {type(data).__name__}"
            raise ValueError(f"{where}: section {section!r} not found (no key {key!r} at {at}; {found})")
    return data


@overload
def load_config(
    source: Mapping[str, Any] | str | Path, cls: None = None, section: str | None = None
) -> OptimizerConfig | RecapOptimizerConfig: ...


@overload
def load_config(source: Mapping[str, Any] | str | Path, cls: type[C], section: str | None = None) -> C: ...


def load_config(
    source: Mapping[str, Any] | str | Path,
    cls: type[C] | None = None,
    section: str | None = None,
) -> Any:
    """Build a config model from a dict, a .yaml/.yml/.json file, or YAML/JSON text.

    Args:
        source: a mapping; a ``Path`` or path string to a file; or the text itself (a one-line
            string that names no file and is no mapping as text is reported as a missing file).
        cls: the model to build (``OptimizerConfig``, ``LearningRate``, ...). ``None`` (default):
            an optimizer section in either schema, tml core's ``OptimizerConfig`` or recap's
            ``RecapOptimizerConfig``, told apart by its fields (:func:`optimizer_schema`).
        section: a dotted key path to descend first, e.g. ``"optimizer"`` for a tml training YAML;
            a number indexes a list (``"model.embeddings.tables.0.optimizer"``).

    Every source is held to :mod:`.limits` before it is parsed or validated, so any config is
    answered in bounded time and memory: a text or file of at most
    :data:`~.limits.MAX_CONFIG_BYTES` (1 MiB), mappings and lists nested at most
    :data:`~.limits.MAX_CONFIG_DEPTH` (100) deep, at most :data:`~.limits.MAX_CONFIG_VALUES`
    (1,048,576) values with every alias counted as the values it stands for, and no value inside
    itself. A dict is held to the last three.

    Raises:
        ValueError: see :func:`read_config_file`; the source is over a limit (naming the value and
            the limit), the text does not parse or repeats a key, the section is missing or not a
            mapping, the schema is mixed or unknown; ``pydantic.ValidationError`` (a ``ValueError``)
            when the config itself is invalid: every error, each with its path in the section, the
            likely cause first; the title names the file and the section, where there are.
    """
    if cls is not None and not (isinstance(cls, type) and issubclass(cls, pydantic.BaseModel)):
        raise TypeError(f"load_config: cls must be a config model class or None, got {cls!r}")
    if section is not None and not isinstance(section, str):
        raise TypeError(f"load_config: section must be a dotted key path (str), got {type(section).__name__}")
    if isinstance(source, Mapping):
        where, data = "config dict", source
        limits.check_shape(data, where)
    elif isinstance(source, Path) or (isinstance(source, str) and _names_a_path(source)):
        where, data = f"config file {source}", read_config_file(source)
    elif isinstance(source, str):
        where, data = "config text", parse_config_text(source)
        if data is None:
            raise ValueError("config text is empty")
        if "\n" not in source and not isinstance(data, Mapping):
            raise ValueError(
                f"config source {source!r} is neither a file (not found) nor YAML/JSON text of a "
                f"mapping (it parses as {type(data).__name__})"
            )
    else:
        raise TypeError(
            "load_config: source must be a dict, a path or YAML/JSON text, "
            f"got {type(source).__name__}"
        )
    if section:
        data = _section(data, section, where)
    if not isinstance(data, Mapping):
        what = f"section {section!r}" if section else "document"
        raise ValueError(
            f"{where}: {what} must be a mapping, got {type(data).__name__}: {repr_start(data)}"
        )
    try:
        if cls is None:
            try:
                return validate_optimizer_config(data)
            except pydantic.ValidationError:
                raise
            except ValueError as e:
                raise ValueError(f"{where}{f' section {section!r}' if section else ''}: {e}") from None
        return cls.model_validate(dict(data))
    except pydantic.ValidationError as e:  # the likely cause first (an unindented schedule, an unknown key)
        named = [where] if where.startswith("config file ") else []
        named += [f"section {section!r}"] if section else []
        raise explained(e, data, f"{e.title} ({', '.join(named)})" if named else None) from None


def dump_config(
    cfg: pydantic.BaseModel, fmt: Literal["dict", "yaml", "json"] = "dict"
) -> dict[str, Any] | str:
    """``cfg`` as plain data (lists, no tuples), unset (None) fields dropped.

    ``load_config(dump_config(cfg, fmt), type(cfg)) == cfg`` for every ``fmt``.
    """
    data = cfg.model_dump(mode="json", exclude_none=True)
    if fmt == "dict":
        return data
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False)
    if fmt == "json":
        return json.dumps(data, indent=2)
    raise ValueError(f"dump_config: fmt must be 'dict', 'yaml' or 'json', got {fmt!r}")
