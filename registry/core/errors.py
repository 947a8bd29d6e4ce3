"""Domain errors of the shell, and the one mapping from any domain error to an RFC 9457 problem.

Every package raises its own errors with a stable ``code`` (and, where the class alone does not
say it, a ``kind``); nothing below the HTTP layer knows status codes. ``to_problem`` is the
single place that decides them, so a client sees one consistent vocabulary.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec

Kind = Literal[
    "malformed",  # the request cannot be parsed
    "invalid",  # parsed, but not acceptable
    "unauthenticated",
    "forbidden",
    "not_found",
    "conflict",
    "gone",  # existed, and was erased
    "too_large",
    "unsupported_media_type",
    "rate_limited",
    "unavailable",
    "internal",
]

STATUS_BY_KIND: dict[str, int] = {
    "malformed": 400,
    "invalid": 422,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "gone": 410,
    "too_large": 413,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "unavailable": 503,
    "internal": 500,
}

TITLE_BY_KIND: dict[str, str] = {
    "malformed": "Malformed request",
    "invalid": "Request not acceptable",
    "unauthenticated": "Authentication required",
    "forbidden": "Not allowed",
    "not_found": "Not found",
    "conflict": "Conflict",
    "gone": "Gone",
    "too_large": "Request too large",
    "unsupported_media_type": "Unsupported media type",
    "rate_limited": "Too many requests",
    "unavailable": "Service unavailable",
    "internal": "Internal error",
}


# Seconds a client should wait before retrying a 503 (every 503 says so in Retry-After): a
# PostgreSQL restart or failover takes a second or two, a busy pool frees up within a
# statement's bound.
UNAVAILABLE_RETRY_AFTER = 2


class RegistryError(Exception):
    """The one root of the registry's errors: every domain's errors hang under it.

    Subclasses set ``code`` (stable, machine-readable) and ``kind`` (how the shell answers,
    mapped to a status once, by ``to_problem``); ``extra`` holds diagnostics a client may see
    (never key material or personal data).
    """

    # Not a ClassVar: a few errors carry the code of the instance (e.g. a strict-JSON code).
    code: str = "error"
    kind: ClassVar[Kind] = "internal"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class Malformed(RegistryError):
    code = "malformed_request"
    kind = "malformed"


class InvalidRequest(RegistryError):
    code = "invalid_request"
    kind = "invalid"


class Unauthenticated(RegistryError):
    """No credentials were sent (or not as a bearer token)."""

    code = "unauthenticated"
    kind = "unauthenticated"


class InvalidToken(Unauthenticated):
    """A bearer token was sent and refused: RFC 6750's ``invalid_token``, same problem code."""


class Forbidden(RegistryError):
    code = "forbidden"
    kind = "forbidden"


class NotFound(RegistryError):
    code = "not_found"
    kind = "not_found"


class Conflict(RegistryError):
    code = "conflict"
    kind = "conflict"


class Gone(RegistryError):
    """What was asked for existed and was erased (a consent's personal data, say)."""

    code = "gone"
    kind = "gone"


class TooLarge(RegistryError):
    code = "body_too_large"
    kind = "too_large"


class UnsupportedMediaType(RegistryError):
    code = "unsupported_media_type"
    kind = "unsupported_media_type"


class RateLimited(RegistryError):
    code = "rate_limited"
    kind = "rate_limited"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after


class Unavailable(RegistryError):
    code = "unavailable"
    kind = "unavailable"


class Problem(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """RFC 9457 problem document; ``code`` is our stable, machine-readable extension member."""

    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    instance: str | None = None
    extra: dict[str, Any] = msgspec.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "code": self.code,
        }
        if self.detail:
            body["detail"] = self.detail
        if self.instance:
            body["instance"] = self.instance
        body.update({k: v for k, v in self.extra.items() if k not in body})
        return body


# Error codes whose kind follows from the code itself, for packages whose errors carry only a
# code (keys/, verifier/). Anything unlisted from those packages is "invalid".
_KIND_BY_CODE: dict[str, Kind] = {
    "malformed": "malformed",
    "rotation_in_progress": "conflict",
    "key_decryption_failed": "internal",
    "master_key_invalid": "internal",
    "image_too_large": "too_large",
    "image_format_not_allowed": "unsupported_media_type",
    # verifier.TimestampUnavailable: the TSA (a dependency) gave no trusted timestamp.
    "timestamp_unavailable": "unavailable",
}


def problem_type(code: str) -> str:
    return f"tag:consent-registry,2026:problem:{code}"


def make_problem(
    *, kind: str, code: str, detail: str | None, instance: str | None = None, **extra: Any
) -> Problem:
    status = STATUS_BY_KIND.get(kind, 500)
    return Problem(
        type=problem_type(code),
        title=TITLE_BY_KIND.get(kind, "Error"),
        status=status,
        code=code,
        detail=detail,
        instance=instance,
        extra=extra,
    )


def kind_of(exc: Exception) -> str:
    """The kind of any of our domain errors: declared, or derived from its code."""
    declared = getattr(exc, "kind", None)
    if isinstance(declared, str) and declared in STATUS_BY_KIND:
        return declared
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        return _KIND_BY_CODE.get(code, "invalid")
    return "internal"


def to_problem(exc: Exception, *, instance: str | None = None) -> Problem:
    """Map one of our domain errors to its problem document."""
    kind = kind_of(exc)
    code = str(getattr(exc, "code", "error"))
    extra = dict(getattr(exc, "extra", {}) or {})
    if kind == "internal":
        # Never echo internals (key handling, database state) to a client.
        return make_problem(
            kind=kind, code="internal_error", detail="internal error", instance=instance
        )
    return make_problem(kind=kind, code=code, detail=str(exc) or None, instance=instance, **extra)
