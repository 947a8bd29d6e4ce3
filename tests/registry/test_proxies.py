"""The caller's address behind trusted proxies: the pure rule (registry.core.proxies)."""

from __future__ import annotations

import pytest

from registry.core.proxies import (
    MAX_HEADER_CHARS,
    MAX_HOPS,
    NO_PROXIES,
    TrustedProxies,
    client_address,
)
from registry.core.settings import Settings, SettingsError

PROXIES = TrustedProxies.parse("10.0.0.0/8, 192.0.2.1, 2001:db8:ffff::/48")
PROXY = "10.0.0.1"
CLIENT = "203.0.113.7"


def _address(peer: str | None, *headers: tuple[str, str], trusted=PROXIES) -> str:
    raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    return client_address(peer, raw, trusted)


def _xff(value: str, peer: str = PROXY, trusted=PROXIES) -> str:
    return _address(peer, ("X-Forwarded-For", value), trusted=trusted)


def _fwd(value: str, peer: str = PROXY) -> str:
    return _address(peer, ("Forwarded", value))


def test_headers_from_an_untrusted_peer_are_ignored():
    assert _xff("198.51.100.1", peer=CLIENT) == CLIENT
    assert _address(CLIENT, ("Forwarded", "for=198.51.100.1")) == CLIENT
    # Nothing is trusted by default.
    assert _xff("198.51.100.1", peer=PROXY, trusted=NO_PROXIES) == PROXY


def test_a_trusted_peer_without_a_header_is_the_caller():
    assert _address(PROXY) == PROXY
    assert _address(PROXY, ("X-Request-ID", "abcdefgh")) == PROXY


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        (CLIENT, CLIENT),
        # A caller's own header is to the left of what our proxy appended.
        (f"198.51.100.1, {CLIENT}", CLIENT),
        (f"1.1.1.1, 2.2.2.2,{CLIENT}", CLIENT),
        # Trusted hops are skipped: the right-most untrusted address answers.
        (f"{CLIENT}, 10.0.0.9", CLIENT),
        (f"198.51.100.1, {CLIENT}, 192.0.2.1, 10.1.2.3", CLIENT),
        # Only trusted addresses: the left-most, which is where the chain starts.
        ("10.0.0.7, 10.0.0.8", "10.0.0.7"),
        # Ports and IPv6, bracketed or bare, in their normal form.
        (f"{CLIENT}:4711", CLIENT),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443, 2001:db8:ffff::2", "2001:db8::1"),
        ("::ffff:203.0.113.7", CLIENT),
        # Bare IPv6 takes no port: this is one (valid) address.
        ("2001:db8::1:80", "2001:db8::1:80"),
    ],
)
def test_x_forwarded_for_is_walked_from_the_right(chain, expected):
    assert _xff(chain) == expected


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        # Garbage stops the walk at the last good address: here the peer.
        ("not-an-address", PROXY),
        ("unknown", PROXY),
        ("", PROXY),
        (" , ", PROXY),
        (f"{CLIENT}, garbage", PROXY),
        ("203.0.113.7:99999", PROXY),
        ("203.0.113.7:", PROXY),
        ("[2001:db8::1", PROXY),
        ("fe80::1%eth0", PROXY),
        ("999.1.1.1", PROXY),
        # ...or a trusted hop the walk had reached.
        (f"{CLIENT}, garbage, 10.0.0.9", "10.0.0.9"),
        ("<script>, 10.0.0.9", "10.0.0.9"),
    ],
)
def test_malformed_entries_stop_the_walk(chain, expected):
    assert _xff(chain) == expected


def test_several_header_lines_are_one_chain():
    got = _address(PROXY, ("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", CLIENT))
    assert got == CLIENT


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"for={CLIENT}", CLIENT),
        (f'for="{CLIENT}:4711"', CLIENT),
        (f"For={CLIENT};proto=https;by=10.0.0.1", CLIENT),
        (f"proto=https; for={CLIENT} ;host=registry.example", CLIENT),
        ('for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
        ('for="[2001:db8:cafe::17]"', "2001:db8:cafe::17"),
        ('for="[2001:db8:cafe::17]:_port"', "2001:db8:cafe::17"),
        (f"for=198.51.100.1, for={CLIENT}, for=10.0.0.5", CLIENT),
        (f'for="_gazonk", for={CLIENT}', CLIENT),
        # Obfuscated and unknown nodes stop the walk, as does a hop without for=.
        ("for=_hidden", PROXY),
        ("for=unknown", PROXY),
        ('for="_SEVKISEK"', PROXY),
        (f"for={CLIENT}, for=unknown, for=10.0.0.5", "10.0.0.5"),
        ("proto=https", PROXY),
        (f"for={CLIENT};for=198.51.100.1", PROXY),
        # RFC 7239 wants IPv6 bracketed (and quoted).
        ("for=2001:db8::1", PROXY),
        ('for="2001:db8::1"', PROXY),
        ('for="203.0.113.7', PROXY),
        ("for=", PROXY),
        ("garbage", PROXY),
        # A caller's broken quoting stays in the caller's own element.
        (f'for="198.51.100.1, for={CLIENT}', CLIENT),
        (f'for="\\", for={CLIENT}', CLIENT),
    ],
)
def test_forwarded_for_is_walked_from_the_right(header, expected):
    assert _fwd(header) == expected


def test_forwarded_wins_over_x_forwarded_for():
    got = _address(PROXY, ("X-Forwarded-For", "198.51.100.1"), ("Forwarded", f"for={CLIENT}"))
    assert got == CLIENT
    # A Forwarded header that names no address does not fall back to the other header.
    got = _address(PROXY, ("X-Forwarded-For", "198.51.100.1"), ("Forwarded", "proto=https"))
    assert got == PROXY


def test_very_long_headers_are_read_from_the_right_and_capped():
    padding = ", ".join("198.51.100.1" for _ in range(5000))
    assert _xff(f"{padding}, {CLIENT}") == CLIENT
    assert _fwd(", ".join(f"for={ip}" for ip in [*["198.51.100.1"] * 5000, CLIENT])) == CLIENT
    # Only MAX_HOPS entries are walked: a chain of trusted hops longer than that answers the
    # last one walked, never an address further left.
    hops = [f"10.0.{i // 256}.{i % 256}" for i in range(MAX_HOPS + 5)]
    assert _xff(", ".join([CLIENT, *hops])) == hops[-MAX_HOPS]
    # An entry cut by the length cap is dropped, not misread ("11.2.3.4" is no "1.2.3.4").
    head = "11.2.3.4"
    tail = "," + " " * (MAX_HEADER_CHARS - len(head))
    cut = (head + tail)[-MAX_HEADER_CHARS:]
    assert cut.startswith("1.2.3.4,")
    assert _xff(head + tail) == PROXY
    one_huge_entry = "1" * (MAX_HEADER_CHARS * 4)
    assert _xff(one_huge_entry) == PROXY


def test_the_peer_is_kept_as_the_server_names_it():
    assert _address(None, ("X-Forwarded-For", CLIENT)) == "unknown"
    # Not an address (a test client's "testclient", a Unix socket's path): never trusted.
    assert _address("testclient", ("X-Forwarded-For", CLIENT)) == "testclient"
    assert _address("::ffff:10.0.0.1", ("X-Forwarded-For", CLIENT)) == CLIENT
    assert _address("2001:db8:ffff::1", ("X-Forwarded-For", CLIENT)) == CLIENT
    assert _address("2001:0db8::0001", ("X-Forwarded-For", CLIENT)) == "2001:db8::1"


def test_trusted_proxies_parse_addresses_and_networks():
    parsed = TrustedProxies.parse(" 10.0.0.0/8,,192.0.2.1 , ::1, 2001:db8::/32 ")
    assert [str(n) for n in parsed.networks] == [
        "10.0.0.0/8",
        "192.0.2.1/32",
        "::1/128",
        "2001:db8::/32",
    ]
    assert not TrustedProxies.parse("")
    assert not TrustedProxies.parse(" , ")


@pytest.mark.parametrize(
    "value", ["proxy.internal", "10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/8;10.1.0.0/16", "*"]
)
def test_a_bad_trusted_proxies_setting_names_itself(value):
    with pytest.raises(SettingsError, match=r"^REGISTRY_TRUSTED_PROXIES: .* is not an IP"):
        Settings(trusted_proxies=value)


def test_the_setting_loads_from_the_environment():
    from registry.core import settings

    loaded = settings.load({"REGISTRY_TRUSTED_PROXIES": "10.0.0.0/8, fd00::/8"})
    assert [str(n) for n in loaded.trusted_proxy_networks.networks] == ["10.0.0.0/8", "fd00::/8"]
    assert not settings.load({}).trusted_proxy_networks
