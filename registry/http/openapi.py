"""The OpenAPI document: Litestar's, plus the request bodies our strict readers consume.

Handlers read bodies through ``registry.http.body`` (strict) rather than Litestar's ``data``
parameter, so each route names its body type in ``opt["body"]`` (JSON) or ``opt["multipart"]``
(form parts), and this module writes them into the schema.

The service serves this same document at ``/schema/openapi.json`` (so the live document is
the committed one), and Swagger UI at ``/schema`` from the files of the installed
``swagger-ui-bundle`` package: the page loads nothing from any other host.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any

import msgspec
import swagger_ui_bundle
from litestar.enums import OpenAPIMediaType
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.static_files import create_static_files_router

if TYPE_CHECKING:
    from litestar import Litestar, Request, Router

_REF = "#/components/schemas/{name}"
# Litestar names path parameters with their type ("/v1/x/{id:str}"); the document does not.
_TYPED_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):[^}]+\}")


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
        (_TYPED_PARAMETER.sub(r"{\1}", route.path), method.lower()): handler.opt[key]
        for route in app.routes
        for handler in getattr(route, "route_handlers", [])
        for method in getattr(handler, "http_methods", ())
        if key in handler.opt
    }


def render(app: Litestar) -> str:
    # Sorted keys: Litestar builds some maps from sets, whose order changes between runs.
    encoded = msgspec.json.encode(document(app), order="sorted")
    return msgspec.json.format(encoded, indent=2).decode() + "\n"


class ServedDocument(OpenAPIRenderPlugin):
    """``/schema/openapi.json``: the document above, byte for byte what ``make openapi`` commits."""

    def __init__(self) -> None:
        super().__init__(path="/openapi.json", media_type=OpenAPIMediaType.OPENAPI_JSON)
        self._rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        del openapi_schema  # Litestar's own, without our request bodies
        if self._rendered is None:
            self._rendered = render(request.app).encode()
        return self._rendered


class OfflineSwaggerUI(OpenAPIRenderPlugin):
    """Swagger UI from the installed package's files, served under ``/schema/ui/``."""

    def __init__(self) -> None:
        super().__init__(path="/swagger", favicon="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(str(openapi_schema.get("info", {}).get("title", "API")))
        config = request.app.openapi_config
        base = html.escape((config.path if config else None) or "/schema")
        return _SWAGGER_PAGE.format(title=title, base=base).encode()

    def receive_router(self, router: Router) -> None:
        router.register(
            create_static_files_router(
                path="/ui",
                directories=[str(swagger_ui_bundle.swagger_ui_path)],
                include_in_schema=False,
            )
        )


# The initialiser is a file of ours (registry/web/static), not inline script, so the page
# needs no 'unsafe-inline'; validatorUrl is off there, since Swagger UI would otherwise send
# the document to an outside validator.
_SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="{base}/ui/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-url="{base}/openapi.json"></div>
<script src="{base}/ui/swagger-ui-bundle.js"></script>
<script src="/static/schema-ui.js"></script>
</body>
</html>
"""
