"""IETF Token Status List: bit layout, codec, zip-bomb cap and the signed JWT."""

from __future__ import annotations

import datetime as dt
import json
import random
import zlib

import msgspec
import pytest

from keys import LocalSigner, b64url_encode, sign_compact
from verifier.statuslist import (
    INVALID,
    STATUS_LIST_TYP,
    SUSPENDED,
    VALID,
    StatusList,
    StatusListError,
    parse_status_list_token,
    status_list_claims,
    verify_status_list_token,
)

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
URI = "https://registry.example/v1/status-lists/7"


def _code(excinfo: pytest.ExceptionInfo[StatusListError]) -> str:
    return excinfo.value.code


def test_draft_example_one_bit():
    # draft-ietf-oauth-status-list §4.1: 16 one-bit statuses, bytes b9 a3.
    status_list = StatusList.decode({"bits": 1, "lst": "eNrbuRgAAhcBXQ"})
    assert status_list.to_bytes() == bytes([0xB9, 0xA3])
    assert [i for i in range(status_list.size) if status_list.get(i)] == [
        0,
        3,
        4,
        5,
        7,
        8,
        9,
        13,
        15,
    ]


def test_draft_example_two_bits():
    # draft-ietf-oauth-status-list §4.1: twelve two-bit statuses.
    status_list = StatusList.decode({"bits": 2, "lst": "eNo76fITAAPfAgc"})
    assert [status_list.get(i) for i in range(12)] == [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3]


def test_index_zero_is_the_least_significant_bits_of_byte_zero():
    status_list = StatusList(8, bits=2)
    status_list.set(0, 3)
    status_list.set(3, 1)
    assert status_list.to_bytes() == bytes([0b01_00_00_11, 0])


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_set_leaves_neighbours_alone(bits):
    status_list = StatusList(64, bits=bits)
    top = (1 << bits) - 1
    for idx in range(64):
        status_list.set(idx, top)
    status_list.set(17, 0)
    assert [status_list.get(idx) for idx in (16, 17, 18)] == [top, 0, top]


def test_two_bit_round_trip_with_suspension():
    rng = random.Random(3)
    status_list = StatusList(1000, bits=2)
    expected = {}
    for idx in rng.sample(range(1000), 200):
        expected[idx] = rng.choice([VALID, INVALID, SUSPENDED, 3])
        status_list.set(idx, expected[idx])
    encoded = status_list.encode()
    assert encoded["bits"] == 2
    assert set(encoded) == {"bits", "lst"}
    decoded = StatusList.decode(json.loads(json.dumps(encoded)))
    assert decoded == status_list
    assert all(decoded.get(idx) == expected.get(idx, VALID) for idx in range(1000))


def test_list_of_131072_entries_round_trips():
    rng = random.Random(7)
    status_list = StatusList(131_072, bits=1)
    revoked = set(rng.sample(range(131_072), 500))
    for idx in revoked:
        status_list.set(idx, INVALID)
    encoded = status_list.encode()
    decoded = StatusList.decode(encoded)
    assert decoded.size == 131_072
    assert {idx for idx in range(131_072) if decoded.get(idx) == INVALID} == revoked
    # Sparse revocations compress far below the 16 KiB raw array.
    assert len(encoded["lst"]) < 4096


@pytest.mark.parametrize("idx", [-1, 16, 10**9, True, 1.0])
def test_index_outside_the_list(idx):
    status_list = StatusList(16)
    with pytest.raises(StatusListError) as excinfo:
        status_list.get(idx)
    assert _code(excinfo) == "status_index_invalid"


@pytest.mark.parametrize(("bits", "value"), [(1, 2), (2, 4), (8, 256), (1, -1)])
def test_value_wider_than_bits(bits, value):
    with pytest.raises(StatusListError) as excinfo:
        StatusList(8, bits=bits).set(0, value)
    assert _code(excinfo) == "status_value_invalid"


@pytest.mark.parametrize(("size", "bits"), [(8, 3), (8, 0), (0, 1), (-5, 1)])
def test_bad_shape(size, bits):
    with pytest.raises(StatusListError) as excinfo:
        StatusList(size, bits=bits)
    assert _code(excinfo) == "status_list_malformed"


@pytest.mark.parametrize(
    "claim",
    [
        [],
        {"bits": 3, "lst": "eNrbuRgAAhcBXQ"},
        {"bits": True, "lst": "eNrbuRgAAhcBXQ"},
        {"bits": "1", "lst": "eNrbuRgAAhcBXQ"},
        {"bits": 1},
        {"bits": 1, "lst": 5},
        {"bits": 1, "lst": "eNrbuRgAAhcBXQ=="},
        {"bits": 1, "lst": "not+base64url"},
        {"bits": 1, "lst": b64url_encode(b"\x00\x01 not zlib")},
        {"bits": 1, "lst": b64url_encode(zlib.compress(b"\x01" * 64)[:-6])},
        {"bits": 1, "lst": b64url_encode(zlib.compress(b"\x01" * 64) + b"tail")},
        {"bits": 1, "lst": b64url_encode(zlib.compress(b""))},
    ],
)
def test_decode_rejects_malformed(claim):
    with pytest.raises(StatusListError) as excinfo:
        StatusList.decode(claim)
    assert _code(excinfo) == "status_list_malformed"


def test_decompression_bomb_is_refused():
    # 64 MiB of zeros compresses to ~64 KiB; decoding must stop at the cap, not inflate it all.
    bomb = zlib.compress(bytes(64 * 1024 * 1024), level=9)
    with pytest.raises(StatusListError) as excinfo:
        StatusList.decode({"bits": 1, "lst": b64url_encode(bomb)})
    assert _code(excinfo) == "status_list_too_large"


def test_decompression_cap_is_configurable():
    claim = StatusList(131_072).encode()
    with pytest.raises(StatusListError) as excinfo:
        StatusList.decode(claim, max_bytes=16_383)
    assert _code(excinfo) == "status_list_too_large"
    assert StatusList.decode(claim, max_bytes=16_384).size == 131_072


# The signed status list token.


@pytest.fixture(scope="module")
def signer():
    return LocalSigner.generate("EdDSA")


@pytest.fixture(scope="module")
def jwks(signer):
    return {"keys": [signer.public_jwk()]}


def _token(signer, claims, *, typ=STATUS_LIST_TYP, extra_headers=None):
    return sign_compact(msgspec.json.encode(claims), signer, typ=typ, extra_headers=extra_headers)


def _claims(status_list=None, *, issued_at=NOW, ttl=300, uri=URI):
    return status_list_claims(
        uri=uri,
        issuer="https://registry.example",
        status_list=status_list or StatusList(131_072, bits=2),
        issued_at=issued_at,
        ttl_seconds=ttl,
    )


def test_claims_carry_sub_iat_exp_ttl():
    claims = status_list_claims(
        uri=URI,
        issuer="https://registry.example",
        status_list=StatusList(16),
        issued_at=NOW,
        ttl_seconds=300,
        lifetime_seconds=3600,
    )
    iat = int(NOW.timestamp())
    assert claims == {
        "iss": "https://registry.example",
        "sub": URI,
        "iat": iat,
        "exp": iat + 3600,
        "ttl": 300,
        "status_list": {"bits": 1, "lst": StatusList(16).encode()["lst"]},
    }


@pytest.mark.parametrize(("ttl", "lifetime"), [(0, None), (300, 299)])
def test_claims_reject_bad_lifetimes(ttl, lifetime):
    with pytest.raises(ValueError, match="seconds"):
        status_list_claims(
            uri=URI,
            issuer="x",
            status_list=StatusList(8),
            issued_at=NOW,
            ttl_seconds=ttl,
            lifetime_seconds=lifetime,
        )


def test_token_round_trip_with_jwks_only(signer, jwks):
    status_list = StatusList(131_072, bits=2)
    status_list.set(42, INVALID)
    status_list.set(43, SUSPENDED)
    token = _token(signer, _claims(status_list))
    parsed = parse_status_list_token(token, jwks=jwks, expected_uri=URI, now=NOW)
    assert parsed == status_list
    assert (parsed.get(41), parsed.get(42), parsed.get(43)) == (VALID, INVALID, SUSPENDED)


def test_token_signed_by_a_key_outside_the_jwks(jwks):
    stranger = LocalSigner.generate("EdDSA")
    with pytest.raises(StatusListError) as excinfo:
        parse_status_list_token(_token(stranger, _claims()), jwks=jwks, now=NOW)
    assert _code(excinfo) == "status_list_signature"


def test_token_with_our_kid_but_another_key(signer, jwks):
    stranger = LocalSigner.generate("EdDSA")
    header, payload, _ = _token(signer, _claims()).split(".")
    forged = f"{header}.{payload}." + b64url_encode(stranger.sign(f"{header}.{payload}".encode()))
    with pytest.raises(StatusListError) as excinfo:
        parse_status_list_token(forged, jwks=jwks, now=NOW)
    assert _code(excinfo) == "status_list_signature"


def test_token_expired(signer, jwks):
    token = _token(signer, _claims(issued_at=NOW - dt.timedelta(hours=1)))
    with pytest.raises(StatusListError) as excinfo:
        parse_status_list_token(token, jwks=jwks, now=NOW)
    assert _code(excinfo) == "status_list_expired"


def test_token_issued_in_the_future(signer, jwks):
    token = _token(signer, _claims(issued_at=NOW + dt.timedelta(minutes=10), ttl=3600))
    with pytest.raises(StatusListError) as excinfo:
        parse_status_list_token(token, jwks=jwks, now=NOW)
    assert _code(excinfo) == "status_list_expired"


def test_token_for_another_uri(signer, jwks):
    token = _token(signer, _claims(uri=URI + "0"))
    with pytest.raises(StatusListError) as excinfo:
        parse_status_list_token(token, jwks=jwks, expected_uri=URI, now=NOW)
    assert _code(excinfo) == "status_list_subject_mismatch"


def test_token_with_another_typ(signer, jwks):
    with pytest.raises(StatusListError) as excinfo:
        parse_status_list_token(_token(signer, _claims(), typ="JWT"), jwks=jwks, now=NOW)
    assert _code(excinfo) == "status_list_malformed"


def test_token_with_crit_header(signer, jwks):
    token = _token(signer, _claims(), extra_headers={"crit": ["exp"]})
    with pytest.raises(StatusListError) as excinfo:
        parse_status_list_token(token, jwks=jwks, now=NOW)
    assert _code(excinfo) == "status_list_malformed"


def test_unsigned_token(signer, jwks):
    header = b64url_encode(
        json.dumps({"alg": "none", "typ": STATUS_LIST_TYP, "kid": signer.kid}).encode()
    )
    payload = b64url_encode(json.dumps(_claims()).encode())
    with pytest.raises(StatusListError) as excinfo:
        parse_status_list_token(f"{header}.{payload}.", jwks=jwks, now=NOW)
    assert _code(excinfo) == "status_list_signature"


def test_token_carrying_a_bomb_is_refused(signer, jwks):
    bomb = zlib.compress(bytes(32 * 1024 * 1024), level=9)
    claims = _claims()
    claims["status_list"] = {"bits": 1, "lst": b64url_encode(bomb)}
    with pytest.raises(StatusListError) as excinfo:
        parse_status_list_token(_token(signer, claims), jwks=jwks, now=NOW)
    assert _code(excinfo) == "status_list_too_large"


@pytest.mark.parametrize(
    "jwks", [{}, {"keys": "x"}, {"keys": [{"kid": "a", "kty": "oct", "k": "AA"}]}]
)
def test_unusable_jwks(signer, jwks):
    with pytest.raises(StatusListError) as excinfo:
        parse_status_list_token(_token(signer, _claims()), jwks=jwks, now=NOW)
    assert _code(excinfo) == "status_list_signature"


def test_token_older_than_its_ttl_is_stale_before_its_exp(signer, jwks):
    # Cacheable for 300 s, acceptable until exp one hour later: after the ttl it is stale.
    claims = status_list_claims(
        uri=URI,
        issuer="https://registry.example",
        status_list=StatusList(16),
        issued_at=NOW - dt.timedelta(seconds=300),
        ttl_seconds=300,
        lifetime_seconds=3600,
    )
    token = _token(signer, claims)
    signed = verify_status_list_token(token, jwks=jwks, expected_uri=URI)
    assert signed.freshness(NOW) == "stale"
    assert signed.freshness(NOW - dt.timedelta(seconds=1)) == "fresh"
    # The leeway absorbs clock skew on iat and exp; it never stretches the ttl.
    assert signed.freshness(NOW, leeway_seconds=60) == "stale"
    with pytest.raises(StatusListError) as excinfo:
        parse_status_list_token(token, jwks=jwks, now=NOW)
    assert _code(excinfo) == "status_list_expired"


def test_freshness_of_exp_and_iat_uses_the_leeway(signer, jwks):
    without_ttl = {**_claims(), "exp": int(NOW.timestamp())}
    del without_ttl["ttl"]
    signed = verify_status_list_token(_token(signer, without_ttl), jwks=jwks)
    assert signed.freshness(NOW + dt.timedelta(seconds=4)) == "fresh"
    assert signed.freshness(NOW + dt.timedelta(seconds=5)) == "stale"
    ahead = verify_status_list_token(
        _token(signer, _claims(issued_at=NOW + dt.timedelta(seconds=10))), jwks=jwks
    )
    assert ahead.freshness(NOW) == "future"
    assert ahead.freshness(NOW, leeway_seconds=10) == "fresh"


def test_a_cached_list_is_served_only_while_half_its_ttl_is_left():
    import time

    from registry.consent.status import StatusListCache, _Cached

    cache = StatusListCache(issuer="https://registry.example", ttl_seconds=300)
    assert cache.max_age_seconds == 150
    now = time.monotonic()
    cache._entries["sl_1"] = _Cached(version=1, kid="k", built_at=now - 149, token="young")
    cache._entries["sl_2"] = _Cached(version=1, kid="k", built_at=now - 151, token="old")
    assert cache._fresh("sl_1", 1, "k") == "young"
    assert cache._fresh("sl_2", 1, "k") is None  # rebuilt: it would reach a verifier half-stale
    assert cache._fresh("sl_1", 2, "k") is None  # the list changed
    assert cache._fresh("sl_1", 1, "other") is None  # the signing key changed
