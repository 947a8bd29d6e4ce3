"""The OpenAPI document: Litestar's, plus the request bodies our strict readers consume.

Handlers read bodies through ``registry.http.body`` (strict) rather than Litestar's ``data``
parameter, so each route names its body type in ``opt["body"]`` (JSON) or ``opt["multipart"]``
(form parts), and this module writes them into the schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from litestar import Litestar

_REF = "#/components/schemas/{name}"


def document(app: Litestar) -> dict[str, Any]:
    schema: dict[str, Any] = app.openapi_schema.to_schema()
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    components.setdefault("securitySchemes", {})["apiKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from `registry clients create` or POST /v1/admin/clients.",
    }
    bodies = _declared(app, "body")
    multiparts = _declared(app, "multipart")
    types = sorted(set(bodies.values()), key=lambda t: t.__name__)
    if types:
        refs, extra = msgspec.json.schema_components(types, ref_template=_REF)
        schemas.update(extra)
        ref_by_type = dict(zip(types, refs, strict=True))
    for (path, method), type_ in bodies.items():
        _add_body(schema, path, method, "application/json", ref_by_type[type_])
    for (path, method), parts in multiparts.items():
        _add_body(schema, path, method, "multipart/form-data", parts)
    return schema


def _add_body(
    schema: dict[str, Any], path: str, method: str, media_type: str, body_schema: Any
) -> None:
    """Add one accepted content type; a route may take JSON and multipart alike."""
    operation = schema["paths"].get(path, {}).get(method)
    if operation is not None:
        body = operation.setdefault("requestBody", {"required": True, "content": {}})
        body["content"][media_type] = {"schema": body_schema}


def _declared(app: Litestar, key: str) -> dict[tuple[str, str], Any]:
    """(path, method) -> what the route declares under ``opt[key]``."""
    return {
        (route.path, method.lower()): handler.opt[key]
        for route in app.routes
        for handler in getattr(route, "route_handlers", [])
        for method in getattr(handler, "http_methods", ())
        if key in handler.opt
    }


def render(app: Litestar) -> str:
    # Sorted keys: Litestar builds some maps from sets, whose order changes between runs.
    encoded = msgspec.json.encode(document(app), order="sorted")
    return msgspec.json.format(encoded, indent=2).decode() + "\n"
