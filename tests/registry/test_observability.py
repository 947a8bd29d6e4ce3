"""The request middleware: request ids, Prometheus metrics by route template, access log."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY

from registry.core import auth
from registry.http.observability import request_id_middleware
from tests.support import bearer

if TYPE_CHECKING:
    from litestar.types import Message, Receive, Scope, Send


def _sample(name: str, path: str, status: int, method: str = "GET") -> float:
    labels = {"app_name": "registry", "method": method, "path": path, "status_code": str(status)}
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_requests_are_counted_and_timed_by_route_template_and_status(client):
    before = {
        "ok": _sample("registry_requests_total", "/healthz", 200),
        "timed": _sample("registry_request_duration_seconds_count", "/healthz", 200),
        "refused": _sample("registry_requests_total", "/v1/admin/clients/{client_id}", 401),
    }
    for _ in range(3):
        assert (await client.get("/healthz")).status_code == 200
    for name in ("cl_one", "cl_two"):
        refused = await client.get(f"/v1/admin/clients/{name}", headers=bearer("rk_" + "B" * 43))
        assert refused.status_code == 401

    assert _sample("registry_requests_total", "/healthz", 200) == before["ok"] + 3
    timed = _sample("registry_request_duration_seconds_count", "/healthz", 200)
    assert timed == before["timed"] + 3
    path = "/v1/admin/clients/{client_id}"
    assert _sample("registry_requests_total", path, 401) == before["refused"] + 2
    assert _sample("registry_requests_in_progress", "/healthz", 200) == 0
    text = (await client.get("/metrics")).text
    for name in (
        "registry_requests_total",
        "registry_request_duration_seconds_bucket",
        "registry_requests_in_progress",
    ):
        assert f"# HELP {name.removesuffix('_bucket')}" in text
    assert (
        'registry_requests_total{app_name="registry",method="GET",path="/healthz",'
        'status_code="200"}' in text
    )


async def test_the_request_id_is_kept_or_made_and_logged(client, caplog):
    caplog.set_level(logging.INFO, logger="registry.access")
    made = await client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{16}", made.headers["x-request-id"])
    assert made.headers["x-request-id"] != (await client.get("/healthz")).headers["x-request-id"]
    kept = await client.get("/healthz", headers={"X-Request-ID": "trace.ab_12-34"})
    assert kept.headers["x-request-id"] == "trace.ab_12-34"
    assert kept.headers.get_list("x-request-id") == ["trace.ab_12-34"]
    too_short = await client.get("/healthz", headers={"X-Request-ID": "abc"})
    assert too_short.headers["x-request-id"] != "abc"
    lines = [r for r in caplog.records if r.name == "registry.access"]
    assert [(r.method, r.path, r.status) for r in lines] == [("GET", "/healthz", 200)] * 4
    assert all(r.duration_ms >= 0 and r.client_address for r in lines)


async def test_a_request_id_outside_its_opaque_form_is_replaced_not_refused(client):
    for sent in (
        "a" * 65,
        "alice@example.com",
        '{"level": "ERROR"}',
        "trace id",
        auth.generate_api_key(),  # fits the characters: redacted, so never an id
    ):
        answer = await client.get("/healthz", headers={"X-Request-ID": sent})
        assert answer.status_code == 200
        assert re.fullmatch(r"[0-9a-f]{16}", answer.headers["x-request-id"]), sent
    longest = "a.b_c-" + "9" * 58
    assert (await client.get("/healthz", headers={"X-Request-ID": longest})).headers[
        "x-request-id"
    ] == longest


async def test_a_request_id_followed_by_a_line_break_is_replaced():
    # HTTP clients refuse to send it; a raw ASGI request shows what the middleware does.
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/healthz",
        "headers": [(b"x-request-id", b"abcdefgh\n")],
        "client": ("127.0.0.1", 5000),
    }
    await request_id_middleware(app)(scope, receive, send)
    [rid] = [value for name, value in sent[0]["headers"] if name == b"x-request-id"]
    assert re.fullmatch(rb"[0-9a-f]{16}", rid)
