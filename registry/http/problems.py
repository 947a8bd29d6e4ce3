"""Exception handlers: every error leaves as an RFC 9457 ``application/problem+json`` document."""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from registry.core import db, errors

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# RFC 6750 section 3: every 401 names the scheme; ``error`` only when a token was sent.
BEARER_CHALLENGE = 'Bearer realm="registry"'
INVALID_TOKEN_CHALLENGE = BEARER_CHALLENGE + ', error="invalid_token"'


def _retry_later() -> dict[str, str]:
    return {"Retry-After": str(errors.UNAVAILABLE_RETRY_AFTER)}


# Litestar raises its own HTTP exceptions for routing and framework-level limits.
_FRAMEWORK_CODES: dict[int, tuple[str, str]] = {
    400: ("malformed", "malformed_request"),
    401: ("unauthenticated", "unauthenticated"),
    403: ("forbidden", "forbidden"),
    404: ("not_found", "not_found"),
    405: ("invalid", "method_not_allowed"),
    413: ("too_large", "body_too_large"),
    415: ("unsupported_media_type", "unsupported_media_type"),
    429: ("rate_limited", "rate_limited"),
}


def _respond(problem: errors.Problem, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        content=problem.to_dict(),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def domain_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    problem = errors.to_problem(exc, instance=request.url.path)
    if problem.status >= 500:  # noqa: PLR2004
        what = "unavailable" if problem.status == 503 else "internal error"  # noqa: PLR2004
        log.error("%s (%s) on %s", what, type(exc).__name__, request.url.path)
    headers = None
    if isinstance(exc, errors.RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
    elif problem.status == 503:  # noqa: PLR2004
        headers = _retry_later()
    elif problem.status == 401:  # noqa: PLR2004
        refused = isinstance(exc, errors.InvalidToken)
        headers = {"WWW-Authenticate": INVALID_TOKEN_CHALLENGE if refused else BEARER_CHALLENGE}
    return _respond(problem, headers)


def database_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # The driver's exception names the fault (CannotConnectNowError, QueryCanceledError...).
    cause = exc.__cause__ if isinstance(exc, db.DatabaseError) and exc.__cause__ else exc
    log.error("database unavailable on %s: %s", request.url.path, type(cause).__name__)
    problem = errors.make_problem(
        kind="unavailable",
        code="database_unavailable",
        detail="the database is not reachable; try again",
        instance=request.url.path,
    )
    return _respond(problem, _retry_later())


def http_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    kind, code = _FRAMEWORK_CODES.get(exc.status_code, ("invalid", "http_error"))
    if isinstance(exc, ValidationException):
        kind, code = "malformed", "invalid_parameter"
    if exc.status_code >= 500:  # noqa: PLR2004
        kind, code = "internal", "internal_error"
    detail = exc.detail if exc.status_code < 500 else "internal error"  # noqa: PLR2004
    problem = errors.make_problem(kind=kind, code=code, detail=detail, instance=request.url.path)
    if problem.status != exc.status_code and exc.status_code < 500:  # noqa: PLR2004
        problem = errors.Problem(
            type=problem.type,
            title=problem.title,
            status=exc.status_code,
            code=code,
            detail=detail,
            instance=request.url.path,
        )
    headers = dict(exc.headers or {})
    if problem.status == 401:  # noqa: PLR2004
        headers.setdefault("WWW-Authenticate", BEARER_CHALLENGE)
    return _respond(problem, headers or None)


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if db.database_fault(exc) is not None:
        # Raised outside ``db.acquire`` (the key ring uses the pool itself): still a 503.
        return database_error(request, exc)
    # The type name only: messages from libraries can carry data we must not echo or log.
    log.error("unhandled %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
    return _respond(
        errors.make_problem(
            kind="internal",
            code="internal_error",
            detail="internal error",
            instance=request.url.path,
        )
    )


def handlers(domain_error_types: tuple[type[Exception], ...]) -> dict[Any, Any]:
    """The app's exception handler map: our domain errors, framework errors, the rest."""
    table: dict[Any, Any] = dict.fromkeys(domain_error_types, domain_error)
    table[db.DatabaseError] = database_error
    table[HTTPException] = http_error
    table[Exception] = unexpected_error
    return table


__all__ = ["BEARER_CHALLENGE", "PROBLEM_JSON", "MediaType", "handlers"]
