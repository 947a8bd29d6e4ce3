"""Request ids, the caller's address, access logs and Prometheus metrics: one ASGI middleware.

One pure-ASGI layer does all four for every HTTP request, with one wrapper around ``send``.
The metrics keep the names and labels Litestar's Prometheus middleware gave them
(``registry_requests_total``, ``registry_request_duration_seconds``,
``registry_requests_in_progress``, ``registry_requests_error_total``; labels ``method``,
``path`` (the route's template), ``status_code``, ``app_name``), but each combination of
labels is looked up once per process and its children kept, not resolved on every request.

``GET /metrics`` shows this process's registry when it is the only one. With several workers
``registry.cli.supervise`` sets PROMETHEUS_MULTIPROC_DIR before they start: each worker's
metrics are then kept in files there, and every scrape merges all of them (a fresh
``CollectorRegistry`` with a ``MultiProcessCollector``), so any worker answers with the same
whole-service figures. The process and garbage-collector collectors (``process_*``,
``python_*``) have no multiprocess form and are left out then.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from typing import TYPE_CHECKING, Any

from litestar import Controller, Response, get
from litestar.enums import ScopeType
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from registry.core.logs import redact, request_id
from registry.core.proxies import NO_PROXIES, TrustedProxies, client_address

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("registry.access")
# Matched whole (fullmatch): "$" would also accept the form followed by a line break.
_INBOUND_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
_REQUEST_ID_HEADER = b"x-request-id"
CLIENT_ADDRESS = "client_address"
"""The key in the ASGI scope's state under which the caller's address is kept."""

APP_NAME = "registry"
_LABELS = ("method", "path", "status_code", "app_name")
_SERVER_ERROR = 500
_REQUESTS = Counter("registry_requests_total", "Total requests", _LABELS)
_DURATION = Histogram("registry_request_duration_seconds", "Request duration, in seconds", _LABELS)
_IN_PROGRESS = Gauge(
    "registry_requests_in_progress",
    "Total requests currently in progress",
    _LABELS,
    multiprocess_mode="livesum",
)
_ERRORS = Counter("registry_requests_error_total", "Total errors in requests", _LABELS)


def multiprocess_dir() -> str | None:
    """The directory of the workers' metric files, or None when this process is the only one.

    prometheus_client chose between the two when it was imported, from the same variable
    (which it also sets from the deprecated lower-case name)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition() -> bytes:
    """The metrics in Prometheus' text format: every worker's, merged, in multiprocess mode."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


class MetricsController(Controller):
    path = "/metrics"
    include_in_schema = False

    # Reading and merging the workers' files is file work: off the event loop.
    @get(sync_to_thread=True)
    def metrics(self) -> Response[bytes]:
        return Response(exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


class _Route:
    """The metric children of one route and method, and of each status it answered."""

    __slots__ = ("_done", "in_progress", "method", "path")

    def __init__(self, method: str, path: str) -> None:
        self.method = method
        self.path = path
        # Labelled as Litestar did: the status is not known yet, so 200.
        self.in_progress = _IN_PROGRESS.labels(method, path, "200", APP_NAME)
        self._done: dict[int, tuple[Counter, Histogram, Counter | None]] = {}

    def done(self, status: int, seconds: float) -> None:
        children = self._done.get(status)
        if children is None:
            labels = (self.method, self.path, str(status), APP_NAME)
            children = (
                _REQUESTS.labels(*labels),
                _DURATION.labels(*labels),
                _ERRORS.labels(*labels) if status >= _SERVER_ERROR else None,
            )
            self._done[status] = children
        requests, duration, errors = children
        if errors is not None:
            errors.inc()
        requests.inc()
        duration.observe(seconds)


# By (method, route template): as many as the routes, since the router answers an unknown
# path or method before this middleware runs.
_routes: dict[tuple[str, str], _Route] = {}


def _route(method: str, path: str) -> _Route:
    route = _routes.get((method, path))
    if route is None:
        route = _routes[(method, path)] = _Route(method, path)
    return route


def _new_request_id() -> str:
    # Ids need to be unique, not secret (a caller may choose its own): no system call.
    return f"{random.getrandbits(64):016x}"


def request_id_middleware(app: ASGIApp, *, trusted_proxies: TrustedProxies = NO_PROXIES) -> ASGIApp:
    """Give each request an id, resolve its caller's address once, count it in the metrics
    and log it when done.

    An inbound ``X-Request-ID`` of 8 to 64 letters, digits, ``.``, ``_`` or ``-`` is kept,
    otherwise one is made; either way the response carries it. Any other value is replaced,
    not refused: the id only correlates lines, so a request should not fail over it (proxies
    and client libraries send ids of their own shapes), and the caller learns the id used from
    the response. The narrow form keeps what a caller chooses out of the log unless it is an
    opaque id: no spaces, quotes, braces or control characters to forge a line or a JSON
    field with, no e-mail address (``@``), at most 64 characters; and nothing
    ``registry.core.logs.redact`` would hide (an API key has the form). The address
    (``registry.core.proxies``, behind ``trusted_proxies``) goes into the scope's state for
    the per-address rate limit (``registry.http.security``) and into the log line.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = scope["headers"]
        peer = scope.get("client")
        address = client_address(peer[0] if peer else None, headers, trusted_proxies)
        scope.setdefault("state", {})[CLIENT_ADDRESS] = address
        inbound = b""
        for name, value in headers:
            if name == _REQUEST_ID_HEADER:
                inbound = value  # the last one, as a dict of the headers would keep
        rid = inbound.decode("latin-1") if inbound else ""
        # An API key fits the form: a value the log would redact is not an id either.
        if not _INBOUND_ID.fullmatch(rid) or redact(rid) != rid:
            rid = _new_request_id()
        rid_header = (_REQUEST_ID_HEADER, rid.encode())
        token = request_id.set(rid)
        method: str = scope["method"]
        route = _route(method, scope.get("path_template", scope["path"]))
        status = 200
        # When the last body part went out (Litestar's measure): 0 when none did.
        sent = 0.0

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            elif message["type"] == "http.response.body":
                sent = time.perf_counter()
            await send(message)

        route.in_progress.inc()
        try:
            await app(scope, receive, send_with_id)
        finally:
            route.in_progress.dec()
            route.done(status, sent - started if sent else 0.0)
            client = scope["state"].get("client")
            log.info(
                "request",
                extra={
                    "method": method,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "client_id": getattr(client, "client_id", None),
                    "client_address": address,
                },
            )
            request_id.reset(token)

    return middleware


__all__: list[Any] = ["MetricsController", "request_id_middleware"]
