"""What the client raises: one root, problems the service answered, and transport failures.

``ProblemError`` is an answer of the service: an RFC 9457 ``application/problem+json``
document with a stable ``code``. ``TransportError`` is everything else that stops a call: no
connection, a timeout, or a body that is not the service's (an HTML page from a proxy, a
truncated answer). ``TokenExpired`` is raised before anything is sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = [
    "BadRequest",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "NotFound",
    "ProblemError",
    "RateLimited",
    "RegistryClientError",
    "Timeout",
    "TokenExpired",
    "TransportError",
    "Unauthenticated",
    "Unavailable",
    "UnexpectedResponse",
    "Unprocessable",
]


class RegistryClientError(Exception):
    """The root of every error this package raises."""


class ProblemError(RegistryClientError):
    """The service refused the call with a problem document (``application/problem+json``).

    ``code`` is the stable, machine-readable reason (README, "Errors"); ``extra`` holds the
    document's other members (e.g. ``tokens`` with each failing token's reasons).
    """

    def __init__(
        self,
        *,
        status: int,
        code: str,
        detail: str | None = None,
        title: str | None = None,
        type: str | None = None,  # noqa: A002 - the member's name in RFC 9457
        instance: str | None = None,
        extra: dict[str, Any] | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title
        self.type = type
        self.instance = instance
        self.extra: dict[str, Any] = dict(extra or {})
        self.retry_after = retry_after
        """Seconds the service asked the caller to wait (``Retry-After``), when it said."""
        self.request_id = request_id
        """The service's ``X-Request-ID`` for this answer: quote it when reporting a fault."""
        super().__init__(f"{status} {code}: {detail}" if detail else f"{status} {code}")


class BadRequest(ProblemError):
    """400: the request does not parse (malformed JSON, unknown or missing fields, ...)."""


class Unauthenticated(ProblemError):
    """401: no API key, or one that is unknown, revoked or expired."""


class Forbidden(ProblemError):
    """403: the API key's client lacks the role, or a grant is missing."""


class NotFound(ProblemError):
    """404: no such record for the caller's tenant (another tenant's records answer this too)."""


class Conflict(ProblemError):
    """409: the request conflicts with what is recorded (e.g. ``generation_conflict``)."""


class Unprocessable(ProblemError):
    """422: well-formed but refused by the domain (e.g. ``consent_token_invalid``)."""


class RateLimited(ProblemError):
    """429: over the client's rate limit; ``retry_after`` says when the bucket has room."""


class Unavailable(ProblemError):
    """503: a dependency is down or busy (``database_unavailable``, ``gate_busy``, ...)."""


PROBLEM_CLASSES: dict[int, type[ProblemError]] = {
    400: BadRequest,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Unprocessable,
    429: RateLimited,
    503: Unavailable,
}


class TransportError(RegistryClientError):
    """The call did not get an answer from the service that the client can read.

    ``status`` is the HTTP status when there was a response (``None`` for connection
    failures and timeouts); ``excerpt`` is the start of a body that was not a problem
    document, with control characters removed and cut short, safe to log.
    """

    def __init__(self, message: str, *, status: int | None = None, excerpt: str = "") -> None:
        self.status = status
        self.excerpt = excerpt
        super().__init__(message)


class ConnectionFailed(TransportError):
    """No connection, or it broke before the answer was complete."""


class Timeout(TransportError):
    """Connecting, sending or reading took longer than the client's ``timeout``."""


class UnexpectedResponse(TransportError):
    """A response that is not the service's answer: an error page from a proxy or balancer,
    a redirect, or a success whose body does not decode as the operation's answer."""


class TokenExpired(RegistryClientError):
    """A consent token passed to a call is past its ``exp``; nothing was sent.

    Ask for a fresh token (``issue_token``) and call again.
    """

    def __init__(self, *, jti: str | None, expired_at: datetime) -> None:
        self.jti = jti
        self.expired_at = expired_at
        ago = (datetime.now(UTC) - expired_at).total_seconds()
        super().__init__(
            f"consent token {jti or '(no jti)'} expired at {expired_at.isoformat()} "
            f"({ago:.0f} s ago); nothing was sent"
        )
