"""Outbound image fetches that cannot be turned against the network the service runs in.

DESIGN §6: no outbound request to an address the operator did not allow. A URL is fetched
only when

- it is ``http`` or ``https`` without credentials, and its host is on the allow-list
  (exact names, IP addresses or CIDR networks, case-insensitive);
- every address the host resolves to is public, or is itself allow-listed: loopback,
  link-local (cloud metadata at 169.254.169.254), private, shared, reserved and multicast
  addresses are refused unless the operator listed that address or its network;
- the connection goes to the address that was checked (``Host`` and TLS SNI carry the
  name), so a second DNS answer cannot send it elsewhere;
- a redirect stays on the same scheme, host and port (and is checked again), at most
  ``max_redirects`` times; proxies from the environment are ignored;
- the body is read as a stream and cut off at ``max_bytes``; the whole fetch, redirects
  included, ends after ``timeout`` seconds.

A refused URL raises ``image_url_not_allowed`` before any connection to it is opened.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import TYPE_CHECKING, ClassVar

import httpx
import msgspec

from registry.core.errors import Kind, RegistryError

if TYPE_CHECKING:
    from collections.abc import Collection

__all__ = [
    "AddressRefused",
    "AllowList",
    "FetchFailed",
    "FetchTooLarge",
    "Fetched",
    "HostUnresolved",
    "ImageFetcher",
    "OutboundError",
    "UrlNotAllowed",
    "parse_allow_list",
    "pinned",
]

_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_MAX_URL_CHARS = 2048


class OutboundError(RegistryError):
    code = "outbound_error"
    kind: ClassVar[Kind] = "invalid"


class UrlNotAllowed(OutboundError):
    """The URL, its host, an address it resolves to or a redirect is not allowed."""

    code = "image_url_not_allowed"
    kind = "invalid"


class FetchFailed(OutboundError):
    """The allowed host did not deliver: connection error, status other than 200, timeout."""

    code = "image_fetch_failed"
    kind = "invalid"


class FetchTooLarge(OutboundError):
    code = "image_too_large"
    kind = "too_large"


class Fetched(msgspec.Struct, frozen=True, kw_only=True):
    data: bytes
    content_type: str | None

    def __repr__(self) -> str:
        return f"Fetched({len(self.data)} bytes, {self.content_type!r})"


def parse_allow_list(entries: Collection[str]) -> tuple[frozenset[str], tuple[_IPNetwork, ...]]:
    """Host names, and networks (an IP is a one-address network), from allow-list entries.

    Raises ValueError naming an entry that is neither.
    """
    names: set[str] = set()
    networks: list[_IPNetwork] = []
    for entry in entries:
        value = entry.strip().lower().strip("[]").rstrip(".")
        if not value:
            continue
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            if "/" in value or any(ch in value for ch in ":@ ?#"):
                msg = f"{entry[:64]!r} is not a host name, IP address or network"
                raise ValueError(msg) from None
            names.add(value)
        else:
            networks.append(network)
    return frozenset(names), tuple(networks)


class HostUnresolved(Exception):
    """The host has no address."""


class AddressRefused(Exception):
    """The host resolves to an address the allow-list does not cover."""


class AllowList:
    """Where outbound requests may go: named hosts, IPs and networks (DESIGN §6).

    Shared by every outbound caller (image fetches, takedown webhooks), each of which turns
    the refusals into its own error codes.
    """

    def __init__(self, entries: Collection[str]) -> None:
        self.names, self.networks = parse_allow_list(entries)

    def __repr__(self) -> str:
        return f"AllowList(hosts={sorted(self.names)!r}, networks={len(self.networks)})"

    @property
    def empty(self) -> bool:
        return not self.names and not self.networks

    def lists(self, host: str) -> bool:
        """Whether a URL's host (a name or an IP literal) is on the list."""
        host = host.lower().rstrip(".")
        literal = _ip_literal(host)
        return host in self.names or (
            literal is not None and any(literal in network for network in self.networks)
        )

    def address_allowed(self, address: _IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.networks):
            return True
        return address.is_global and not address.is_multicast

    async def resolve(self, url: httpx.URL) -> _IPAddress:
        """The address to connect to; every address of the host must be allowed.

        Raises HostUnresolved or AddressRefused.
        """
        literal = _ip_literal(url.host)
        if literal is not None:
            candidates = [literal]
        else:
            port = url.port or (443 if url.scheme == "https" else 80)
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    url.host, port, type=socket.SOCK_STREAM
                )
            except OSError:
                raise HostUnresolved(url.host) from None
            candidates = [ipaddress.ip_address(info[4][0]) for info in infos]
        if not candidates or not all(self.address_allowed(a) for a in candidates):
            raise AddressRefused(url.host)
        return candidates[0]


def pinned(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    address: _IPAddress,
    *,
    headers: dict[str, str],
    content: bytes | None = None,
) -> httpx.Request:
    """A request to the checked ``address``; ``Host`` and TLS SNI still carry the name, so a
    second DNS answer cannot send it elsewhere."""
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return client.build_request(
        method,
        url.copy_with(host=str(address)),
        headers={"Host": url.netloc.decode("ascii"), **headers},
        content=content,
        extensions=extensions,
    )


class ImageFetcher:
    """Fetches images from allow-listed hosts only; see the module docstring."""

    def __init__(
        self,
        allowed_hosts: Collection[str],
        *,
        timeout: float,
        max_bytes: int,
        max_redirects: int = 3,
    ) -> None:
        self._allowed = AllowList(allowed_hosts)
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        self._client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, timeout=httpx.Timeout(timeout)
        )

    def __repr__(self) -> str:
        return f"ImageFetcher({self._allowed!r})"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self, url: str) -> Fetched:
        """The body at ``url``; raises image_url_not_allowed, image_fetch_failed or
        image_too_large."""
        current = self._checked(url)
        try:
            async with asyncio.timeout(self._timeout):
                for _ in range(self._max_redirects + 1):
                    address = await self._resolve(current)
                    outcome = await self._get(current, address)
                    if isinstance(outcome, Fetched):
                        return outcome
                    following = self._checked(str(current.join(outcome)))
                    if (following.scheme, following.host, following.port) != (
                        current.scheme,
                        current.host,
                        current.port,
                    ):
                        raise UrlNotAllowed("image_url redirects to another host")
                    current = following
        except TimeoutError:
            raise FetchFailed(f"the image was not fetched within {self._timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise FetchFailed(f"the image could not be fetched ({type(exc).__name__})") from None
        raise FetchFailed(f"more than {self._max_redirects} redirects")

    def _checked(self, url: str) -> httpx.URL:
        if self._allowed.empty:
            raise UrlNotAllowed(
                "image_url is not accepted: no host is allow-listed "
                "(REGISTRY_IMAGE_FETCH_ALLOWED_HOSTS); upload the image instead"
            )
        if len(url) > _MAX_URL_CHARS:
            raise UrlNotAllowed(f"image_url is longer than {_MAX_URL_CHARS} characters")
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            raise UrlNotAllowed("image_url does not parse") from None
        if parsed.scheme not in {"http", "https"} or not parsed.host:
            raise UrlNotAllowed("image_url must be an http(s) URL with a host")
        if parsed.userinfo:
            raise UrlNotAllowed("image_url may not carry credentials")
        if not self._allowed.lists(parsed.host):
            raise UrlNotAllowed(f"host {parsed.host[:64]!r} is not on the image fetch allow-list")
        return parsed

    async def _resolve(self, url: httpx.URL) -> _IPAddress:
        try:
            return await self._allowed.resolve(url)
        except HostUnresolved:
            raise FetchFailed(f"host {url.host[:64]!r} does not resolve") from None
        except AddressRefused:
            raise UrlNotAllowed(
                f"host {url.host[:64]!r} resolves to an address that is not allowed "
                "(loopback, link-local, private or reserved)"
            ) from None

    async def _get(self, url: httpx.URL, address: _IPAddress) -> Fetched | str:
        """The image, or the Location of a redirect."""
        request = pinned(
            self._client,
            "GET",
            url,
            address,
            headers={
                "Accept": "image/*",
                # The byte cap counts what arrives; a compressed body could expand past it.
                "Accept-Encoding": "identity",
            },
        )
        response = await self._client.send(request, stream=True)
        try:
            if response.is_redirect:
                location: str = response.headers.get("location", "")
                if not location:
                    raise FetchFailed("a redirect without a Location")
                return location
            if response.status_code != 200:  # noqa: PLR2004 - only a plain 200 delivers an image
                raise FetchFailed(f"the image host answered {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._max_bytes:
                raise FetchTooLarge(f"the image is larger than {self._max_bytes} bytes")
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > self._max_bytes:
                    raise FetchTooLarge(f"the image is larger than {self._max_bytes} bytes")
        finally:
            await response.aclose()
        return Fetched(data=bytes(body), content_type=response.headers.get("content-type"))


def _ip_literal(host: str) -> _IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
