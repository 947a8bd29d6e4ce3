"""The OpenAPI document: Litestar's, plus the request bodies our strict readers consume.

Handlers read bodies through ``registry.http.body`` (strict) rather than Litestar's ``data``
parameter, so each route names its body type in ``opt["body"]`` (JSON) or ``opt["multipart"]``
(form parts), and this module writes them into the schema; ``opt["body_optional"]`` marks a
body that may be left out, ``opt["also_produces"]`` more media types of a response, and
``opt["problems"]`` error statuses beyond those the operation's shape implies (see
``_PROBLEMS``). Every error status is declared as ``application/problem+json``.

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

from registry.http.problems import PROBLEM_JSON

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
        # Every multipart reader refuses a part it does not name (400 `part_invalid`...).
        closed = {"additionalProperties": False, **parts}
        _add_body(schema, path, method, "multipart/form-data", _hoist(closed, schemas))
    for path, method in _declared(app, "body_optional"):
        schema["paths"][path][method]["requestBody"]["required"] = False
    for (path, method), by_status in _declared(app, "also_produces").items():
        responses = schema["paths"][path][method]["responses"]
        for status, media_types in by_status.items():
            content = responses[str(status)]["content"]
            first = next(iter(content.values()))
            content.update(dict.fromkeys(media_types, first))
    _integral_bounds(schema)
    schemas["Problem"] = _PROBLEM
    extra_problems = _declared(app, "problems")
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method in _METHODS:
                _declare_problems(method, operation, extra_problems.get((path, method), ()))
    return schema


_METHODS = frozenset({"get", "put", "post", "delete", "patch"})


_INT64_MAX = 2**63 - 1


def _integral_bounds(node: Any) -> None:
    """Litestar writes an integer parameter's bounds as floats: 2**63 - 1 (a bigint, our
    largest position) came out as 9.223372036854776e18, which is 2**63, a value the service
    refuses. An integer's bounds are written back as integers; the one float at 2**63 is the
    bigint bound, the only integer bound we use that large."""
    if isinstance(node, list):
        for item in node:
            _integral_bounds(item)
    elif isinstance(node, dict):
        if node.get("type") == "integer":
            for key in ("minimum", "maximum"):
                bound = node.get(key)
                if isinstance(bound, float) and bound.is_integer():
                    node[key] = min(int(bound), _INT64_MAX)
        for value in node.values():
            _integral_bounds(value)


def _hoist(node: Any, schemas: dict[str, Any]) -> Any:
    """A part's schema from ``msgspec.json.schema`` keeps its definitions in ``$defs`` beside
    it, but ``#/$defs/...`` resolves from the document's root: move them to the components."""
    if isinstance(node, list):
        return [_hoist(item, schemas) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$defs":
            for name, definition in value.items():
                schemas.setdefault(name, _hoist(definition, schemas))
        elif key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
            out[key] = _REF.format(name=value.removeprefix("#/$defs/"))
        else:
            out[key] = _hoist(value, schemas)
    return out


# RFC 9457 plus our ``code``; a problem may carry diagnostics beside them (``limit``,
# ``retry_after``...), hence additional properties.
_PROBLEM: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem document. `code` is stable and machine-readable; "
    "`type` is `tag:consent-registry,2026:problem:<code>`.",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}

_RETRY_AFTER = {
    "Retry-After": {
        "required": True,
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}
_CHALLENGE = {
    "WWW-Authenticate": {
        "required": True,
        "description": 'RFC 6750: `Bearer realm="registry"`, with `error="invalid_token"` when '
        "a key was sent and refused.",
        "schema": {"type": "string"},
    }
}

# Status -> (when an operation can answer it, what it means, the headers it always carries).
# Which operations: "any" (every operation), "input" (it takes parameters or a body), "body",
# "write" (not a GET), "bearer" (it needs an API key), "record" (it names a record: in its
# path, query or body).
_PROBLEMS: dict[int, tuple[str, str, dict[str, Any]]] = {
    400: (
        "input",
        (
            "Malformed: the body or a parameter cannot be read (`malformed_request`, "
            "`malformed_json`, `invalid_parameter`, `duplicate_key`, ...)."
        ),
        {},
    ),
    401: (
        "bearer",
        "No API key, or a key that is unknown, revoked or expired (`unauthenticated`).",
        _CHALLENGE,
    ),
    403: ("bearer", "The key's roles do not allow this operation (`forbidden`).", {}),
    404: (
        "record",
        "No such record, or one of another tenant (`not_found` and record-specific codes).",
        {},
    ),
    409: (
        "write",
        (
            "Conflicts with the record's state or an earlier request with the same "
            "idempotency key or generation id."
        ),
        {},
    ),
    413: (
        "body",
        "The body, a part or an image exceeds its limit (`body_too_large`, `image_too_large`).",
        {},
    ),
    415: ("body", "A content type or image format this operation does not accept.", {}),
    422: ("input", "Readable but not acceptable; the `code` says which rule.", {}),
    429: ("any", "Rate limited, per API key or per address (`rate_limited`).", _RETRY_AFTER),
    503: (
        "any",
        (
            "A dependency (the database, a timestamp authority) is not available; nothing "
            "was changed (`database_unavailable`, ...)."
        ),
        _RETRY_AFTER,
    ),
}


def _declare_problems(method: str, operation: dict[str, Any], extra: tuple[int, ...]) -> None:
    """Every problem status the operation can answer, as ``application/problem+json``.

    Which ones follows from what the operation takes (``_PROBLEMS``), plus the statuses its
    route names in ``opt["problems"]``. Litestar declares a generic 400 of its own shape; every
    error leaves as a problem document instead (``registry.http.problems``), so the error
    statuses are replaced, not merged."""
    parameters = operation.get("parameters", [])
    traits = {"any"}
    if parameters or "requestBody" in operation:
        traits.add("input")
    if "requestBody" in operation:
        traits.add("body")
    if operation.get("security"):
        traits.add("bearer")
    if parameters or "requestBody" in operation:
        # A record named in the path, the query or the body may not exist.
        traits.add("record")
    if method != "get":
        traits.add("write")
    responses = operation.setdefault("responses", {})
    for status in [s for s in responses if int(s) >= 400]:  # noqa: PLR2004
        del responses[status]
    for status, (when, description, headers) in _PROBLEMS.items():
        if when in traits or status in extra:
            response: dict[str, Any] = {
                "description": description,
                "content": {PROBLEM_JSON: {"schema": {"$ref": _REF.format(name="Problem")}}},
            }
            if headers:
                response["headers"] = headers
            responses[str(status)] = response


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
