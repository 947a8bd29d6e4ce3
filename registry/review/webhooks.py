"""Posting takedown notices to publishers' webhooks, only where the operator allowed.

The same outbound rules as image fetches (``registry.core.outbound``, DESIGN §6): the URL's host
must be on REGISTRY_WEBHOOK_HOSTS (names, IPs or CIDR networks); every address the name
resolves to must be public or itself allow-listed; the connection goes to the address that
was checked (``Host`` and TLS SNI carry the name); redirects are not followed (a redirect is
a failed attempt); proxies from the environment are ignored. The URL is checked again at
every attempt, so removing a host from the list stops deliveries to it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx

from registry.core.outbound import AddressRefused, AllowList, HostUnresolved, pinned
from registry.review.errors import WebhookHostNotAllowed, WebhookUrlInvalid
from registry.review.takedown import SendResult

if TYPE_CHECKING:
    from collections.abc import Collection

__all__ = ["NOTICE_MEDIA_TYPE", "WebhookSender"]

NOTICE_MEDIA_TYPE = "application/jwt"
_MAX_URL = 2000


class WebhookSender:
    """Checks webhook URLs against the allow-list and posts notices to them."""

    def __init__(self, allowed_hosts: Collection[str], *, timeout: float) -> None:
        self._allowed = AllowList(allowed_hosts)
        self._timeout = timeout
        self._client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, timeout=httpx.Timeout(timeout)
        )

    def __repr__(self) -> str:
        return f"WebhookSender({self._allowed!r})"

    async def aclose(self) -> None:
        await self._client.aclose()

    def check(self, url: str) -> httpx.URL:
        """The parsed URL, if it may receive notices; else webhook_url_invalid or
        webhook_host_not_allowed."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            raise WebhookUrlInvalid("the webhook URL does not parse") from None
        if (
            len(url) > _MAX_URL
            or parsed.scheme not in {"http", "https"}
            or not parsed.host
            or parsed.userinfo
            or parsed.fragment
        ):
            raise WebhookUrlInvalid(
                "the webhook URL must be http(s)://host/path, without credentials or a"
                f" fragment, at most {_MAX_URL} characters"
            )
        if not self._allowed.lists(parsed.host):
            raise WebhookHostNotAllowed(
                f"host {parsed.host[:64]!r} is not on REGISTRY_WEBHOOK_HOSTS; the operator must"
                " allow it"
            )
        return parsed

    async def send(self, url: str, notice: str, *, delivery_id: str, attempt: int) -> SendResult:
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self._timeout):
                status = await self._post(url, notice, delivery_id=delivery_id, attempt=attempt)
        except TimeoutError:
            error = "timeout"
        except HostUnresolved:
            error = "host_unresolved"
        except AddressRefused:
            error = "address_refused"
        except (WebhookUrlInvalid, WebhookHostNotAllowed):
            error = "host_not_allowed"
        except (httpx.HTTPError, OSError):
            error = "connection_failed"
        else:
            if 300 <= status < 400:  # noqa: PLR2004 - HTTP status classes
                error = "redirect_refused"
            elif not 200 <= status < 300:  # noqa: PLR2004
                error = "http_status"
        return SendResult(
            started_at=started_at,
            duration_ms=round((time.perf_counter() - started) * 1000.0, 3),
            http_status=status,
            error=error,
        )

    async def _post(self, url: str, notice: str, *, delivery_id: str, attempt: int) -> int:
        parsed = self.check(url)
        address = await self._allowed.resolve(parsed)
        request = pinned(
            self._client,
            "POST",
            parsed,
            address,
            content=notice.encode("ascii"),
            headers={
                "Content-Type": NOTICE_MEDIA_TYPE,
                "Registry-Delivery": delivery_id,
                "Registry-Attempt": str(attempt),
            },
        )
        # Only the status matters; the body is never read.
        response = await self._client.send(request, stream=True)
        await response.aclose()
        return response.status_code
