"""Strict JSON for signed documents and request bodies: one reading, or an error with a code.

A signed document must mean one thing to every reader. JSON parsers disagree on duplicate
member names (first wins, last wins, error), so duplicates are refused at any depth, as are
non-standard constants, nesting beyond a limit, unknown members and loose types.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, TypeVar

import msgspec

from registry.core.errors import RegistryError

__all__ = [
    "DuplicateKeyError",
    "InvalidTypeError",
    "InvalidValueError",
    "JsonError",
    "MalformedJsonError",
    "MissingFieldError",
    "TooDeepError",
    "UnknownFieldError",
    "parse_strict_json",
]


class JsonError(RegistryError):
    """The bytes are not one unambiguous JSON document of the expected shape."""

    code = "malformed_json"
    kind = "malformed"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)


class MalformedJsonError(JsonError):
    code = "malformed_json"


class DuplicateKeyError(JsonError):
    """An object names the same member twice, at any depth."""

    code = "duplicate_key"


class TooDeepError(JsonError):
    """Arrays and objects nest deeper than allowed."""

    code = "too_deep"


class UnknownFieldError(JsonError):
    """An object carries a member the format does not define."""

    code = "unknown_field"


class MissingFieldError(JsonError):
    """A required member is absent."""

    code = "missing_field"


class InvalidTypeError(JsonError):
    """A member has the wrong JSON type."""

    code = "invalid_type"


class InvalidValueError(JsonError):
    """A member has the right type but a value the format does not allow."""

    code = "invalid_value"


T = TypeVar("T")

# Every JSON integer we accept fits in 64 bits (signed), as PostgreSQL's bigint and every
# count, size and limit do; a longer one is refused before anything converts it.
_INT_MIN = -(2**63)
_INT_MAX = 2**63 - 1
_INT_DIGITS = len(str(_INT_MAX))
_ECHO_CHARS = 24

# msgspec words a wrong JSON type as "Expected `str`, got `int`"; other failures are values.
_TYPE_MISMATCH = re.compile(r"Expected `[^`]+`, got `")


def parse_strict_json(data: bytes, type_: type[T], *, max_depth: int = 32) -> T:
    """Decode UTF-8 JSON ``data`` into ``type_`` (usually a Struct that forbids unknown fields).

    Raises malformed_json, duplicate_key, too_deep, unknown_field, missing_field,
    invalid_type or invalid_value.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedJsonError("JSON must be UTF-8") from None
    try:
        tree = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except RecursionError:
        raise TooDeepError(f"JSON nests deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise MalformedJsonError(f"not valid JSON: {exc.msg} at offset {exc.pos}") from None
    if _exceeds_depth(tree, max_depth):
        raise TooDeepError(f"JSON nests deeper than {max_depth} levels")
    try:
        return msgspec.json.decode(data, type=type_, strict=True)
    except msgspec.ValidationError as exc:
        raise _validation_error(str(exc)) from None
    except msgspec.DecodeError as exc:
        # The standard library accepted it, so this is a value msgspec reads more strictly.
        raise MalformedJsonError(f"not valid JSON: {exc}") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise DuplicateKeyError(f"member {name[:64]!r} appears more than once")
        result[name] = value
    return result


def _no_constant(name: str) -> Any:
    raise MalformedJsonError(f"JSON does not allow {name}")


def _bounded_int(literal: str) -> int:
    # Counting digits first: Python refuses to convert more than 4300 of them (ValueError).
    if len(literal.lstrip("-")) <= _INT_DIGITS:
        value = int(literal)
        if _INT_MIN <= value <= _INT_MAX:
            return value
    raise InvalidValueError(f"integer {_echo(literal)} is out of range (at most 64 bits)")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise InvalidValueError(f"number {_echo(literal)} is out of range (a 64-bit float)")
    return value


def _echo(literal: str) -> str:
    return literal if len(literal) <= _ECHO_CHARS else literal[:_ECHO_CHARS] + "..."


def _exceeds_depth(tree: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(tree, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _validation_error(text: str) -> Exception:
    if text.startswith("Object contains unknown field"):
        return UnknownFieldError(text)
    if text.startswith("Object missing required field"):
        return MissingFieldError(text)
    if _TYPE_MISMATCH.match(text):
        return InvalidTypeError(text)
    return InvalidValueError(text)
