"""Behind a proxy: which address the per-address rate limit and the access log use."""

from __future__ import annotations

import contextlib
import logging

from litestar.testing import AsyncTestClient

from registry.app import create_app
from tests.support import make_settings

PUBLIC = "/v1/uses"  # a public endpoint, limited per address
# rate_limit_per_minute=6 gives a burst of 10 requests per bucket.
BURST = 10
PROXY = "10.0.0.1"
STRANGER = "203.0.113.50"


class Peer:
    """The TCP peer the service sees (Litestar's test client always says "testclient")."""

    def __init__(self) -> None:
        self.host = STRANGER

    def around(self, app):
        async def asgi(scope, receive, send):
            if scope["type"] == "http":
                scope = {**scope, "client": (self.host, 4711)}
            await app(scope, receive, send)

        return asgi


@contextlib.asynccontextmanager
async def _service(settings, tmp_path, peer: Peer, **overrides):
    changed = make_settings(
        settings.database_url,
        tmp_path,
        master_key=settings.master_key,
        rate_limit_per_minute=6,
        **overrides,
    )
    async with AsyncTestClient(app=peer.around(create_app(changed))) as http:
        yield http


async def _statuses(http, count: int, headers_for) -> list[int]:
    return [(await http.get(PUBLIC, headers=headers_for(i))).status_code for i in range(count)]


def _addresses(caplog) -> list[str]:
    return [
        record.client_address
        for record in caplog.records
        if record.name == "registry.access" and record.path == PUBLIC
    ]


async def test_a_spoofed_header_from_an_untrusted_peer_is_ignored(settings, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="registry.access")
    peer = Peer()
    async with _service(settings, tmp_path, peer, trusted_proxies="10.0.0.0/8") as http:
        # A new made-up address on every request: still one bucket, the peer's.
        statuses = await _statuses(
            http,
            BURST + 1,
            lambda i: {
                "X-Forwarded-For": f"198.51.100.{i}",
                "Forwarded": f"for=198.51.100.{i}",
            },
        )
    assert statuses == [200] * BURST + [429]
    assert _addresses(caplog) == [STRANGER] * (BURST + 1)


async def test_no_proxy_is_trusted_by_default(settings, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="registry.access")
    peer = Peer()
    peer.host = PROXY
    async with _service(settings, tmp_path, peer) as http:
        statuses = await _statuses(
            http, BURST + 1, lambda i: {"X-Forwarded-For": f"198.51.100.{i}"}
        )
    assert statuses == [200] * BURST + [429]
    assert set(_addresses(caplog)) == {PROXY}


async def test_a_trusted_proxy_names_the_caller(settings, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="registry.access")
    peer = Peer()
    peer.host = PROXY
    async with _service(settings, tmp_path, peer, trusted_proxies="10.0.0.0/8") as http:
        # One caller, whatever it claims to its left of what the proxy appended: one bucket.
        first = await _statuses(
            http, BURST + 1, lambda i: {"X-Forwarded-For": f"192.0.2.{i}, 198.51.100.1"}
        )
        # Another caller through the same proxy has a bucket of its own...
        second = await _statuses(http, 1, lambda _: {"X-Forwarded-For": "198.51.100.2"})
        # ...named by Forwarded as well (with a port, through a second trusted hop).
        third = await _statuses(
            http, 1, lambda _: {"Forwarded": 'for="[2001:db8::7]:4711", for=10.0.0.2'}
        )
        # The proxy's own requests (no header) are its own caller too.
        own = await _statuses(http, 1, lambda _: {})
    assert first == [200] * BURST + [429]
    assert second == third == own == [200]
    assert _addresses(caplog) == [
        *["198.51.100.1"] * (BURST + 1),
        "198.51.100.2",
        "2001:db8::7",
        PROXY,
    ]


async def test_the_same_forwarded_caller_shares_its_bucket_across_headers(settings, tmp_path):
    peer = Peer()
    peer.host = PROXY
    async with _service(settings, tmp_path, peer, trusted_proxies=PROXY) as http:
        statuses = await _statuses(
            http,
            BURST + 1,
            lambda i: (
                {"X-Forwarded-For": "198.51.100.9"}
                if i % 2
                else {"Forwarded": 'for="198.51.100.9:5000";proto=https'}
            ),
        )
        # A garbage chain falls back to the proxy, which is not that caller.
        garbage = await _statuses(http, 1, lambda _: {"X-Forwarded-For": "<script>"})
    assert statuses == [200] * BURST + [429]
    assert garbage == [200]


def test_the_json_log_line_carries_the_address():
    from registry.core.logs import JsonFormatter

    record = logging.LogRecord("registry.access", logging.INFO, __file__, 1, "request", (), None)
    record.client_address = "2001:db8::7"
    assert '"client_address":"2001:db8::7"' in JsonFormatter().format(record)
