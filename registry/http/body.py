"""Strict request-body reading: size, content type, duplicate keys, depth, unknown fields, types.

Litestar's own ``data`` decoding coerces types and keeps the last of duplicate keys, which is
too lenient for signed consent documents and admin input; every JSON handler reads through here.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from registry.errors import Malformed, TooLarge, UnsupportedMediaType

if TYPE_CHECKING:
    from litestar import Request

T = TypeVar("T")


class DuplicateKey(Malformed):
    code = "duplicate_key"


class TooDeep(Malformed):
    code = "json_too_deep"


class UnknownField(Malformed):
    code = "unknown_field"


class InvalidField(Malformed):
    code = "invalid_field"


class MissingField(Malformed):
    code = "missing_field"


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            msg = f"duplicate key {key!r} in JSON object"
            raise DuplicateKey(msg, key=key[:100])
        out[key] = value
    return out


def _depth(value: Any, limit: int) -> int:
    """Depth of nested containers, stopping as soon as it passes ``limit``."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return depth
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def parse_json(raw: bytes, type_: type[T], *, max_depth: int = 32) -> T:
    """Parse JSON bytes into ``type_`` strictly, raising a Malformed subclass on any fault."""
    try:
        obj = json.loads(raw, object_pairs_hook=_reject_duplicates)
    except DuplicateKey:
        raise
    except RecursionError:
        msg = f"JSON nests deeper than {max_depth} levels"
        raise TooDeep(msg) from None
    except (ValueError, UnicodeDecodeError) as exc:
        msg = f"body is not valid JSON: {exc}"
        raise Malformed(msg) from None
    if _depth(obj, max_depth) > max_depth:
        msg = f"JSON nests deeper than {max_depth} levels"
        raise TooDeep(msg)
    return convert(obj, type_)


def convert(obj: Any, type_: type[T]) -> T:
    try:
        return msgspec.convert(obj, type_, strict=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if "unknown field" in text:
            raise UnknownField(text) from None
        if "missing required field" in text:
            raise MissingField(text) from None
        raise InvalidField(text) from None


def require_json(content_type: str) -> None:
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        msg = "send the body as application/json"
        raise UnsupportedMediaType(msg)


async def read_json(
    request: Request[Any, Any, Any], type_: type[T], *, max_bytes: int, max_depth: int
) -> T:
    require_json(request.headers.get("content-type", ""))
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        msg = f"JSON bodies are limited to {max_bytes} bytes"
        raise TooLarge(msg, limit=max_bytes)
    raw = await request.body()
    if len(raw) > max_bytes:
        msg = f"JSON bodies are limited to {max_bytes} bytes"
        raise TooLarge(msg, limit=max_bytes)
    return parse_json(raw, type_, max_depth=max_depth)
