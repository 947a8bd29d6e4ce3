"""The part of the client that does not depend on how bytes travel.

A ``Call`` says what to send (method, path, body), whether it is safe to send again, which
consent tokens it carries, and how to read the answer. ``Core`` turns a call into an
``httpx.Request`` and reads each attempt's outcome into a value, an error, or a wait before
the next attempt. The sync and the async client only send the request and sleep, each its own
way (``registry_client.client``), so retries, errors and parsing are written once.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import logging
import math
import random
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from registry_client.errors import (
    PROBLEM_CLASSES,
    ConnectionFailed,
    ProblemError,
    Timeout,
    TokenExpired,
    TransportError,
    UnexpectedResponse,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Call", "Core", "Done", "RetryPolicy", "Wait", "decoder", "path"]

log = logging.getLogger("registry_client")

T = TypeVar("T")

PROBLEM_JSON = "application/problem+json"
# The statuses that mean "not now, try later": the request was refused before it changed
# anything (rate limit) or a dependency is down (the service answers 503 with Retry-After).
RETRY_STATUSES = frozenset({429, 503})
EXCERPT_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a call that is safe to repeat is tried again.

    ``attempts`` bounds the tries of one call (1: never again). Between tries the client
    waits what the service's ``Retry-After`` says or, without one, a random time up to
    ``backoff_base * 2**(try - 1)`` seconds, at most ``backoff_cap`` ("full jitter", so
    callers that failed together do not come back together). A ``Retry-After`` longer than
    ``max_retry_after`` is not waited for: the error is raised at once, with ``retry_after``.
    """

    attempts: int = 3
    backoff_base: float = 0.25
    backoff_cap: float = 5.0
    max_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if not 0 <= self.backoff_base <= self.backoff_cap:
            raise ValueError("backoff_base must be between 0 and backoff_cap")
        if self.max_retry_after < 0:
            raise ValueError("max_retry_after must not be negative")

    def backoff(self, attempt: int) -> float:
        """The wait after failed try number ``attempt`` (1-based), without a Retry-After."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One operation of the API, ready to send (as often as the retry policy allows)."""

    method: Literal["GET", "POST"]
    path: str
    parse: Callable[[httpx.Response], T]
    content: bytes | None = None
    """A JSON body, already encoded."""
    files: list[tuple[str, tuple[str | None, bytes, str]]] | None = None
    """Multipart parts: (name, (file name or None for a plain field, bytes, content type))."""
    headers: dict[str, str] = field(default_factory=dict)
    repeatable: bool = False
    """Safe to send again: it changes nothing, or the service recognises a repeat (an
    ``Idempotency-Key``, a ``generation_id``) and answers with what it stored."""
    tokens: tuple[str, ...] = ()
    """Consent tokens the call carries; one past its ``exp`` stops the call before sending."""


@dataclass(frozen=True, slots=True)
class Done(Generic[T]):
    value: T


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float


def path(template: str, *segments: str) -> str:
    """``template`` with each ``{}`` replaced by a segment, percent-encoded whole (an id
    holding ``/`` or ``..`` stays one segment)."""
    return template.format(*(quote(segment, safe="") for segment in segments))


def excerpt(body: bytes) -> str:
    """The start of a body that is not ours, safe to show and log: decoded leniently,
    control characters and runs of whitespace collapsed, cut at ``EXCERPT_CHARS``."""
    text = body[: EXCERPT_CHARS * 4].decode("utf-8", "replace")
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


def decoder(type_: type[T]) -> Callable[[httpx.Response], T]:
    """A parser of a JSON answer into ``type_``."""
    json_decoder = msgspec.json.Decoder(type_)

    def parse(response: httpx.Response) -> T:
        try:
            return json_decoder.decode(response.content)
        except msgspec.DecodeError as exc:
            raise UnexpectedResponse(
                f"HTTP {response.status_code}: the answer is not the expected JSON ({exc})",
                status=response.status_code,
                excerpt=excerpt(response.content),
            ) from None

    return parse


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from ``Retry-After`` (delay-seconds or an HTTP date), None when absent or bad."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def problem(response: httpx.Response) -> ProblemError | None:
    """The problem document of an error answer as its exception; None when it is none."""
    media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != PROBLEM_JSON:
        return None
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return None
    if not isinstance(body, dict):
        return None
    status = response.status_code
    code = body.get("code")
    known = {"type", "title", "status", "code", "detail", "instance"}
    cls = PROBLEM_CLASSES.get(status, ProblemError)
    return cls(
        status=status,
        code=code if isinstance(code, str) and code else f"http_{status}",
        detail=_text(body.get("detail")),
        title=_text(body.get("title")),
        type=_text(body.get("type")),
        instance=_text(body.get("instance")),
        extra={k: v for k, v in body.items() if k not in known},
        retry_after=retry_after(response),
        request_id=response.headers.get("x-request-id"),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def error_of(response: httpx.Response) -> ProblemError | TransportError:
    """What an answer that is not a success means."""
    found = problem(response)
    if found is not None:
        return found
    status = response.status_code
    kind = "a redirect" if 300 <= status < 400 else "an error"  # noqa: PLR2004
    return UnexpectedResponse(
        f"HTTP {status}: {kind} that is not the registry's problem document "
        "(a proxy or balancer in between?)",
        status=status,
        excerpt=excerpt(response.content),
    )


def token_expiry(token: str) -> tuple[datetime, str | None] | None:
    """``exp`` and ``jti`` of a JWT, read without verifying it (the service verifies); None
    when the token does not decode or has no numeric ``exp``."""
    parts = token.split(".")
    if len(parts) != 3:  # noqa: PLR2004 - header, payload, signature
        return None
    encoded = parts[1]
    try:
        payload = msgspec.json.decode(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return None
    if not isinstance(payload, dict):
        return None
    exp = payload.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        return None
    try:
        moment = datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    jti = payload.get("jti")
    return moment, jti if isinstance(jti, str) else None


class Core:
    """Requests and the reading of answers, shared by ``RegistryClient`` and
    ``AsyncRegistryClient``."""

    def __init__(
        self, base_url: str, api_key: str | None, retries: RetryPolicy, user_agent: str
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in {"http", "https"} or not url.host:
            raise ValueError("base_url must be an http(s) URL such as https://registry.example")
        self.base_url = str(base_url).rstrip("/")
        self._api_key = api_key
        self.retries = retries
        self.user_agent = user_agent

    def __repr__(self) -> str:
        # Never the API key.
        return f"Core(base_url={self.base_url!r})"

    def check_tokens(self, call: Call[Any]) -> None:
        """Raise TokenExpired for the first token the call carries that is past its exp."""
        now = time.time()
        for token in call.tokens:
            expiry = token_expiry(token)
            if expiry is not None and expiry[0].timestamp() <= now:
                raise TokenExpired(jti=expiry[1], expired_at=expiry[0])

    def build(self, http: httpx.Client | httpx.AsyncClient, call: Call[Any]) -> httpx.Request:
        headers = {"Accept": "application/json", "User-Agent": self.user_agent, **call.headers}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if call.content is not None:
            headers["Content-Type"] = "application/json"
        return http.build_request(
            call.method,
            self.base_url + call.path,
            content=call.content,
            files=call.files,
            headers=headers,
        )

    def on_response(self, call: Call[T], response: httpx.Response, attempt: int) -> Done[T] | Wait:
        """A success's value, a wait before trying again, or raise what the answer means."""
        if 200 <= response.status_code < 300:  # noqa: PLR2004
            return Done(call.parse(response))
        error = error_of(response)
        if call.repeatable and response.status_code in RETRY_STATUSES:
            wait = self._wait(attempt, retry_after(response))
            if wait is not None:
                log.info(
                    "%s %s: HTTP %d, try %d of %d again in %.2f s",
                    call.method,
                    call.path,
                    response.status_code,
                    attempt + 1,
                    self.retries.attempts,
                    wait.seconds,
                )
                return wait
        raise error

    def on_failure(self, call: Call[Any], exc: httpx.HTTPError, attempt: int) -> Wait:
        """A wait before trying again after a transport failure, or raise it as ours."""
        where = f"{call.method} {call.path}"
        error: TransportError
        transient = True
        if isinstance(exc, httpx.TimeoutException):
            error = Timeout(f"{where}: timed out ({type(exc).__name__})")
        elif isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
            error = ConnectionFailed(f"{where}: {type(exc).__name__}: {exc}")
        else:
            # A local fault (a bad URL, a protocol the client cannot speak): trying again
            # would fail the same way.
            error = TransportError(f"{where}: {type(exc).__name__}: {exc}")
            transient = False
        if transient and call.repeatable:
            wait = self._wait(attempt, None)
            if wait is not None:
                log.info(
                    "%s: %s, try %d of %d again in %.2f s",
                    where,
                    type(exc).__name__,
                    attempt + 1,
                    self.retries.attempts,
                    wait.seconds,
                )
                return wait
        raise error from exc

    def _wait(self, attempt: int, asked: float | None) -> Wait | None:
        policy = self.retries
        if attempt >= policy.attempts:
            return None
        if asked is None:
            return Wait(policy.backoff(attempt))
        if asked > policy.max_retry_after:
            return None
        # What the service asked for, and a little jitter on top so that callers it refused
        # together do not all return in the same instant.
        return Wait(asked + random.uniform(0, policy.backoff_base))  # noqa: S311 - jitter
