"""Request-body reading: size and content type here, then strict JSON (registry.core.strictjson).

Litestar's own ``data`` decoding coerces types and keeps the last of duplicate keys, which is
too lenient for signed consent documents and admin input; every JSON handler reads through here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from registry.core.errors import TooLarge, UnsupportedMediaType
from registry.core.strictjson import parse_strict_json

if TYPE_CHECKING:
    from litestar import Request

T = TypeVar("T")


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
    return parse_strict_json(raw, type_, max_depth=max_depth)
