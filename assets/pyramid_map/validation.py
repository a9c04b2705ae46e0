"""What every map model shares: the model config, strict scalar types, and raising located problems."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Strict, ValidationError, ValidatorFunctionWrapHandler
from pydantic_core import InitErrorDetails, PydanticCustomError

Float = Annotated[float, Strict()]  # an int is taken as a number, a bool or a string is not
# by name: dataclasses.replace, keywords; forbid: a misspelt key is refused, not ignored
CONFIG = ConfigDict(validate_by_name=True, validate_by_alias=True, extra="forbid")
Problem = tuple[tuple[str | int, ...], str]  # (location as pydantic spells it, relative to the model; message)


def fail(title: str, problems: list[Problem], error: ValidationError | None = None) -> None:
    """Raise the problems (then an error's own) at once, each at its location; nothing if there are none."""
    details = [_problem(loc, message) for loc, message in problems]
    details += [_detail(err) for err in error.errors()] if error is not None else []
    if details:
        raise ValidationError.from_exception_data(title, details)


def _problem(loc: tuple[str | int, ...], message: str) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("map", "{message}", {"message": message}), loc=loc, input=None)


def _detail(err: Any) -> InitErrorDetails:
    """An error of a ValidationError, raisable again."""
    if err["type"] == "map":
        return _problem(err["loc"], err["msg"])
    ctx = {"ctx": err["ctx"]} if "ctx" in err else {}
    return InitErrorDetails(type=err["type"], loc=err["loc"], input=err["input"], **ctx)


def mapping_problems(data: Any, keys: tuple[str, ...]) -> list[Problem]:
    """The keys an alias path reads through (`program` for `program.name`) must hold mappings where present."""
    if not isinstance(data, dict):
        return []
    return [
        ((key,), f"must be a mapping, got {data[key]!r}")
        for key in keys
        if key in data and not isinstance(data[key], dict)
    ]


def validated(title: str, data: Any, handler: ValidatorFunctionWrapHandler, problems: list[Problem]) -> Any:
    """The model's own validation (for a wrap validator), its errors raised together with `problems`."""
    try:
        result = handler(data)
    except ValidationError as error:
        fail(title, problems, error)
        raise
    fail(title, problems)
    return result
