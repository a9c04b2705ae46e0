"""Map problems as the user reads them: `file:line: key.path[index]: message`, from pydantic's errors."""

from __future__ import annotations

import dataclasses
import difflib
from datetime import date
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import AliasPath, ValidationError

from assets.pyramid_map.models import PyramidMap

_TYPE_ERRORS = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a mapping",
    "dataclass_type": "a mapping",
}


class MapError(ValueError):
    """A problem in pyramid.yaml, located by file, line and key path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("pyramid map is invalid:\n  " + "\n  ".join(problems))


def key_lines(node: yaml.Node | None, prefix: str = "", lines: dict[str, int] | None = None) -> dict[str, int]:
    """Map every key path (`campaigns[1].holdout`) to its 1-based line in the file."""
    lines = {} if lines is None else lines
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key_path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            lines[key_path] = key_node.start_mark.line + 1
            key_lines(value_node, key_path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            item_path = f"{prefix}[{index}]"
            lines[item_path] = item.start_mark.line + 1
            key_lines(item, item_path, lines)
    return lines


def located_problems(error: ValidationError, path: Path, lines: dict[str, int]) -> list[str]:
    """One `file:line: key path: message` per pydantic error, in validation (map) order."""
    problems = []
    for err in error.errors():
        key_path = _key_path(err["loc"])
        problems.append(f"{path}:{_line(lines, key_path)}: {key_path}: {_message(err)}")
    return problems


def _key_path(loc: tuple[str | int, ...]) -> str:
    """`("campaigns", 1, "holdout")` -> `campaigns[1].holdout`."""
    key_path = ""
    for part in loc:
        key_path += f"[{part}]" if isinstance(part, int) else (f".{part}" if key_path else str(part))
    return key_path


def _line(lines: dict[str, int], key_path: str) -> int:
    """The line of the key path, else of its nearest parent that is in the file."""
    while key_path:
        if key_path in lines:
            return lines[key_path]
        key_path = key_path.rsplit(".", 1)[0] if "." in key_path else ""
    return 1


def _message(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "missing":
        return f"is required ({_kind_name(_annotation_at(err['loc']))})"
    if kind == "value_error":
        return str(err["ctx"]["error"])
    if kind == "literal_error" and (allowed := get_args(_annotation_at(err["loc"]))):
        return f"must be one of {', '.join(allowed)}, got {err['input']!r}"
    if kind in _TYPE_ERRORS:
        return f"must be {_TYPE_ERRORS[kind]}, got {err['input']!r}"
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        return _unknown_key(err["loc"])
    return err["msg"]  # our own located problems ("map"), or pydantic's words for anything rarer


def _unknown_key(loc: tuple[str | int, ...]) -> str:
    """A key the map does not know: the keys it does know there, the closest first when one is close."""
    model = _annotation_at(loc[:-1])
    fields = model.__pydantic_fields__.items() if dataclasses.is_dataclass(model) else []
    known = list(dict.fromkeys(_map_key(name, info) for name, info in fields))
    if len(loc) > 2 and get_origin(_annotation_at(loc[:-2])) is dict:
        known = known[1:]  # an item of a mapping (a metric, a source) is named by its key, not by an `id` key
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key; {hint}known keys here: {', '.join(known)}"


def _map_key(name: str, info: Any) -> str:
    """The key the map spells for a field: the first step of its alias path, else its name."""
    return str(info.validation_alias.path[0]) if isinstance(info.validation_alias, AliasPath) else name


def _annotation_at(loc: tuple[str | int, ...]) -> Any:
    """The declared type at a pydantic error location, walking the models' fields from PyramidMap."""
    node: Any = PyramidMap
    parts = list(loc)
    while parts:
        node = _unwrap(node)
        if dataclasses.is_dataclass(node):
            node = _field_at(node, parts)
        elif get_origin(node) in (tuple, dict):
            parts.pop(0)  # an item index or a mapping key
            node = get_args(node)[1 if get_origin(node) is dict else 0]
        else:
            break
    return _unwrap(node)


def _field_at(model: type, parts: list[str | int]) -> Any:
    """The type of the field `parts` starts with (by its alias path if it has one); consumes those parts."""
    for name, info in model.__pydantic_fields__.items():
        alias = info.validation_alias.path if isinstance(info.validation_alias, AliasPath) else [name]
        if parts[: len(alias)] == alias:
            del parts[: len(alias)]
            return info.annotation
    parts.clear()
    return Any


def _unwrap(node: Any) -> Any:
    """`Annotated[X, ...]` -> X; `X | None` -> X."""
    while get_origin(node) is Annotated or get_origin(node) in (Union, UnionType):
        node = next(arg for arg in get_args(node) if arg is not type(None))
    return node


def _kind_name(node: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", date: "a date YYYY-MM-DD"}
    if get_origin(node) is Literal:
        return "a string"
    if get_origin(node) is tuple:
        return "a list"
    return names.get(node, "a mapping")
