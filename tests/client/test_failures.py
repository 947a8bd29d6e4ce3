"""What the client does when the answer is not a success: against real local servers that
answer as a proxy, a busy service, a broken network or a stalled one would, counting every
request that reached them. Both clients run each case (their retry loops are their own)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from registry_client import (
    AsyncRegistryClient,
    ConnectionFailed,
    HashQuery,
    RateLimited,
    RegistryClient,
    RetryPolicy,
    SourceAsset,
    Timeout,
    TokenExpired,
    TransportError,
    Unavailable,
    UnexpectedResponse,
)
from tests.client import support

API_KEY = "rk_" + "S" * 43
FAST = RetryPolicy(attempts=3, backoff_base=0.01, backoff_cap=0.05)
KINDS = ["sync", "async"]
PROBLEM = {"Content-Type": "application/problem+json"}
JWKS = json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AA", "kid": "k1"}]}).encode()


def _problem(status: int, code: str, **extra: Any) -> bytes:
    body = {"type": f"tag:consent-registry,2026:problem:{code}", "title": "Unavailable"}
    return json.dumps(
        {**body, "status": status, "code": code, "detail": "try later", **extra}
    ).encode()


def unavailable(retry_after: str | None = "0") -> support.Reply:
    headers = dict(PROBLEM)
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return support.Reply(503, headers, _problem(503, "database_unavailable"))


def call(kind: str, base_url: str, name: str, *args: Any, retries=FAST, timeout=5.0, **kwargs):
    """``name`` on a client of ``kind`` against ``base_url``; its value, or raise its error."""
    if kind == "sync":
        with RegistryClient(base_url, API_KEY, retries=retries, timeout=timeout) as client:
            return getattr(client, name)(*args, **kwargs)

    async def run():
        async with AsyncRegistryClient(
            base_url, API_KEY, retries=retries, timeout=timeout
        ) as client:
            return await getattr(client, name)(*args, **kwargs)

    return asyncio.run(run())


# Calls that are safe to repeat, and calls that are not (each with arguments that would do).
LIVE = support.unsigned_jwt({"jti": "tok_live", "exp": time.time() + 3600})
IMAGE = b"\xff\xd8\xff\xe0" + b"\x00" * 64
REPEATABLE = {
    "fetch_jwks": ((), {}),
    "get_consent": (("cns_1",), {}),
    "verify_token": (("not-a-jwt",), {}),
    "prompt_check": (("gen-1", "a portrait"), {}),
    "gate_check": (("gen-1",), {"image": IMAGE, "scores": {"sexual_content": 0.0}}),
    "lookup_hashes": (([HashQuery(signal="pdq", hash=support.PDQ)],), {}),
    "verify_provenance": ((IMAGE,), {}),
    "submit_consent": (("a.b.c",), {"photos": [IMAGE]}),
    "grant": (("cns_1", "cl_1"), {}),
}
NOT_REPEATABLE = {
    "issue_token": (("cns_1", ["reference.generate"]), {}),
    "enrol_signer": (({"kty": "OKP"},), {"subject_ref": "alice"}),
    "sign_output": ((IMAGE,), {"generation_id": "gen-1", "model": "m"}),
    "appeal": (("dec_1", "my case"), {}),
    "withdraw": (("cns_1",), {"withdrawal": "a.b.c"}),
    "erase": (("cns_1",), {}),
}


@pytest.mark.parametrize("kind", KINDS)
def test_an_html_502_from_a_proxy_is_a_transport_error_with_a_short_safe_excerpt(kind):
    page = (
        b"<html><head><title>502 Bad Gateway</title></head>\r\n<body>\x1b[31m"
        + b"upstream unreachable " * 400
        + b"</body></html>"
    )
    server = support.ScriptedServer(support.Reply(502, {"Content-Type": "text/html"}, page))
    with support.serving(server), pytest.raises(UnexpectedResponse) as caught:
        call(kind, server.base_url, "fetch_jwks")
    error = caught.value
    assert isinstance(error, TransportError)
    assert error.status == 502
    assert error.excerpt.startswith("<html><head><title>502 Bad Gateway</title>")
    assert len(error.excerpt) <= 201
    assert "\x1b" not in error.excerpt
    assert "\r" not in error.excerpt
    assert API_KEY not in str(error)
    assert API_KEY not in error.excerpt
    # Not a problem document, and not a status that means "later": asked once.
    assert len(server.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_success_that_does_not_decode_is_an_unexpected_response(kind):
    server = support.ScriptedServer(
        support.Reply(200, {"Content-Type": "text/html"}, b"<html>captive portal</html>")
    )
    with support.serving(server), pytest.raises(UnexpectedResponse) as caught:
        call(kind, server.base_url, "get_consent", "cns_1")
    assert caught.value.status == 200
    assert caught.value.excerpt == "<html>captive portal</html>"


@pytest.mark.parametrize("kind", KINDS)
def test_a_503_with_retry_after_is_waited_for_and_retried_for_an_idempotent_call(kind):
    server = support.ScriptedServer(
        unavailable(retry_after="1"),
        unavailable(retry_after="0"),
        support.Reply(200, {"Content-Type": "application/json"}, JWKS),
    )
    started = time.monotonic()
    with support.serving(server):
        jwks = call(kind, server.base_url, "fetch_jwks")
    elapsed = time.monotonic() - started
    assert jwks.keys[0]["kid"] == "k1"
    assert len(server.requests) == 3
    # The first Retry-After asked for a whole second, and the client waited it.
    assert elapsed >= 1.0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(REPEATABLE))
def test_every_repeatable_call_is_retried_up_to_its_attempts(kind, name):
    args, kwargs = REPEATABLE[name]
    server = support.ScriptedServer(unavailable())
    with support.serving(server), pytest.raises(Unavailable) as caught:
        call(kind, server.base_url, name, *args, **kwargs)
    assert len(server.requests) == FAST.attempts
    assert caught.value.code == "database_unavailable"
    assert caught.value.retry_after == 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(NOT_REPEATABLE))
def test_a_call_that_is_not_safe_to_repeat_is_sent_once(kind, name):
    args, kwargs = NOT_REPEATABLE[name]
    server = support.ScriptedServer(
        unavailable(retry_after="1"), support.Reply(201, {"Content-Type": "application/json"})
    )
    with support.serving(server), pytest.raises(Unavailable) as caught:
        call(kind, server.base_url, name, *args, **kwargs)
    assert len(server.requests) == 1
    assert caught.value.status == 503
    assert caught.value.retry_after == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_consent_submission_is_retried_with_the_same_idempotency_key(kind):
    server = support.ScriptedServer(unavailable())
    with support.serving(server), pytest.raises(Unavailable):
        call(kind, server.base_url, "submit_consent", "a.b.c")
    keys = [headers.get("Idempotency-Key") for _, _, headers in server.requests]
    assert len(keys) == FAST.attempts
    assert keys[0]
    assert len(set(keys)) == 1
    # A key of the caller's own is sent as given.
    again = support.ScriptedServer(unavailable())
    with support.serving(again), pytest.raises(Unavailable):
        call(kind, again.base_url, "submit_consent", "a.b.c", idempotency_key="upload-77")
    assert {h.get("Idempotency-Key") for _, _, h in again.requests} == {"upload-77"}


@pytest.mark.parametrize("kind", KINDS)
def test_a_rate_limit_asking_longer_than_the_client_waits_is_raised_at_once(kind):
    headers = {**PROBLEM, "Retry-After": "120"}
    server = support.ScriptedServer(
        support.Reply(429, headers, _problem(429, "rate_limited", retry_after=120))
    )
    with support.serving(server), pytest.raises(RateLimited) as caught:
        call(kind, server.base_url, "verify_token", "not-a-jwt")
    assert len(server.requests) == 1
    assert caught.value.retry_after == 120
    assert caught.value.code == "rate_limited"


@pytest.mark.parametrize("kind", KINDS)
def test_a_hang_up_is_retried_only_for_an_idempotent_call(kind):
    server = support.HangUpServer()
    with support.serving(server):
        with pytest.raises(ConnectionFailed):
            call(kind, server.base_url, "lookup_provenance", IMAGE)
        assert server.connections == FAST.attempts
        with pytest.raises(ConnectionFailed):
            call(kind, server.base_url, "issue_token", "cns_1", ["reference.generate"])
        assert server.connections == FAST.attempts + 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_refused_connection_is_a_connection_failure(kind):
    with pytest.raises(ConnectionFailed) as caught:
        call(kind, f"http://127.0.0.1:{support.closed_port()}", "fetch_jwks")
    assert caught.value.status is None


@pytest.mark.parametrize("kind", KINDS)
def test_a_stalled_answer_times_out_and_an_idempotent_call_tries_again(kind):
    stalled = support.Reply(200, {"Content-Type": "application/json"}, JWKS, delay=1.0)
    server = support.ScriptedServer(stalled)
    started = time.monotonic()
    with support.serving(server), pytest.raises(Timeout) as caught:
        call(kind, server.base_url, "fetch_jwks", timeout=0.2)
    assert time.monotonic() - started < 3.0
    assert caught.value.status is None
    assert len(server.requests) == FAST.attempts


@pytest.mark.parametrize("kind", KINDS)
def test_an_expired_token_is_refused_before_anything_is_sent(kind):
    expired = support.expired_token()
    source = [SourceAsset(asset_id="ast_1", consent_token=expired)]
    server = support.ScriptedServer(support.Reply(500))
    with support.serving(server):
        for name, args, kwargs in [
            ("verify_token", (expired,), {}),
            ("prompt_check", ("gen-1", "a portrait"), {"source_assets": source}),
            ("gate_check", ("gen-1",), {"image": IMAGE, "source_assets": source}),
            (
                "sign_output",
                (IMAGE,),
                {"generation_id": "g", "model": "m", "consent_tokens": [expired]},
            ),
        ]:
            with pytest.raises(TokenExpired) as caught:
                call(kind, server.base_url, name, *args, **kwargs)
            assert caught.value.jti == "tok_expired"
        assert server.requests == []
        # A token that is still valid goes out (here to a server that answers 500).
        with pytest.raises(UnexpectedResponse):
            call(kind, server.base_url, "verify_token", LIVE)
        assert len(server.requests) == 1
