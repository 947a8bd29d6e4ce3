"""``--online``: the verifier fetches the status lists and the key history the artifacts name,
over real HTTP, from a local server publishing what the registry publishes (a key history,
a status list) made with real keys.

Fetching fails closed to ``indeterminate`` (exit 2): a server that hangs past ``--timeout``,
an HTTP error, a URI that is not https:// (nor http:// on this machine) is ``status_unknown``
or ``keys_unknown``, never ``invalid``. Without ``--online`` nothing is requested.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import msgspec
import pytest

from keys import LocalSigner, sign_compact
from registry.consent import TokenAsset, build_claims
from registry.consent.receipts import RECEIPT_TYP
from verifier import (
    ConsentRef,
    ImageLimits,
    ProvenanceClaims,
    decode,
    perceptual_hashes,
    sha256_hex,
    sign,
    sign_assertion,
)
from verifier.cli import main
from verifier.key_history import KEY_HISTORY_TYP, key_history_claims
from verifier.statuslist import StatusList, status_list_claims

if TYPE_CHECKING:
    from pathlib import Path

HISTORY_PATH = "/.well-known/registry-keys.json"
LIST_PATH = "/v1/status-lists/1"
AUDIENCE = "cl_generator"
IDX = 7


@dataclass
class Published:
    """What a registry at ``issuer`` (the local server) publishes, and files a user holds."""

    issuer: str
    list_uri: str
    signer: LocalSigner
    image: Path
    anchor: Path
    jwks: Path
    assertion: str
    token: str
    receipt: str

    def history(self, *, issuer: str | None = None, signer: LocalSigner | None = None) -> bytes:
        """A key history: ``signer`` (default ours) signing everything for a day now."""
        key = signer or self.signer
        claims = key_history_claims(
            issuer=issuer or self.issuer,
            keys=[(key.public_jwk(), datetime.now(UTC) - timedelta(days=1), None)],
        )
        return sign_compact(msgspec.json.encode(claims), key, typ=KEY_HISTORY_TYP).encode()

    def status_list(self, *, status: int = 0, signer: LocalSigner | None = None) -> bytes:
        statuses = StatusList(64, bits=2)
        statuses.set(IDX, status)
        claims = status_list_claims(
            uri=self.list_uri,
            issuer=self.issuer,
            status_list=statuses,
            issued_at=datetime.now(UTC),
            ttl_seconds=300,
        )
        payload = msgspec.json.encode(claims)
        return sign_compact(payload, signer or self.signer, typ="statuslist+jwt").encode()


@pytest.fixture
def published(http_server, identity, facts, make_image, tmp_path) -> Published:
    """Our output naming a consent on the server's list, its assertion, a token, a receipt;
    the server publishes the key history and the list."""
    issuer = http_server.base_url
    list_uri = f"{issuer}{LIST_PATH}"
    signer = LocalSigner.generate("EdDSA")
    refs = (ConsentRef(jti="tok-1", status_list_uri=list_uri, status_idx=IDX),)
    signed = sign(
        make_image(), "image/jpeg", msgspec.structs.replace(facts, consent_refs=refs), identity
    )
    decoded = decode(signed, ImageLimits(max_bytes=10**6, max_pixels=10**6), hash_only=True)
    assertion = ProvenanceClaims.build(
        iss=issuer,
        jti="out-1",
        sha256=sha256_hex(signed),
        phash=perceptual_hashes(decoded.image).phash,
        generation_id=facts.generation_id,
        consents=refs,
        decision=facts.decision,
    )
    now = datetime.now(UTC)
    token_claims = build_claims(
        issuer=issuer,
        subject="subj-pseudo-1",
        audience=AUDIENCE,
        consent_id="cns_1",
        assets=[TokenAsset(id="ast_1", sha256="a" * 64)],
        uses=["reference.generate"],
        status_idx=IDX,
        status_uri=list_uri,
        now=now,
        ttl=timedelta(minutes=15),
        not_after=now + timedelta(days=30),
    )
    receipt = {"iss": issuer, "iat": int(now.timestamp()), "jti": "rcp_1", "cid": "cns_1"}
    files = {
        "image": signed,
        "anchor": identity.anchor_pem.encode(),
        "jwks": json.dumps({"keys": [signer.public_jwk()]}).encode(),
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    world = Published(
        issuer=issuer,
        list_uri=list_uri,
        signer=signer,
        image=tmp_path / "image",
        anchor=tmp_path / "anchor",
        jwks=tmp_path / "jwks",
        assertion=sign_assertion(assertion, signer),
        token=sign_compact(msgspec.json.encode(token_claims), signer, typ="consent+jwt"),
        receipt=sign_compact(msgspec.json.encode(receipt), signer, typ=RECEIPT_TYP),
    )
    http_server.routes[HISTORY_PATH] = world.history()
    http_server.routes[LIST_PATH] = world.status_list()
    return world


def run(*argv: str | Path) -> tuple[int, dict]:
    out = io.StringIO()
    code = main([*map(str, argv), "--json"], stdout=out)
    return code, json.loads(out.getvalue())


def run_text(*argv: str | Path) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(map(str, argv)), stdout=out), out.getvalue()


def verify_args(world: Published, *extra: str | Path) -> list[str | Path]:
    return ["verify", world.image, "--trust", world.anchor, "--assertion", world.assertion, *extra]


def token_args(world: Published, *extra: str | Path) -> list[str | Path]:
    return ["token", world.token, "--audience", AUDIENCE, "--use", "reference.generate", *extra]


def test_verify_online_fetches_the_key_history_and_the_status_list(published, http_server):
    code, body = run(*verify_args(published, "--online"))

    assert code == 0, body
    assert (body["verdict"], body["reasons"]) == ("verified", [])
    assert body["assertion"]["status"] == "valid"
    (consent,) = body["consents"]
    assert (consent["status"], consent["sources"]) == ("valid", ["manifest", "assertion"])
    assert body["fetched"] == [
        {"uri": f"{published.issuer}{HISTORY_PATH}", "kind": "key_history", "error": None},
        {"uri": published.list_uri, "kind": "status_list", "error": None},
    ]
    # One history for the assertion and the list (same issuer), fetched once.
    assert http_server.requests == [HISTORY_PATH, LIST_PATH]

    code, text = run_text(*verify_args(published, "--online"))
    assert code == 0, text
    assert f"key history {published.issuer}{HISTORY_PATH}: fetched" in text
    assert f"consent tok-1 ({published.list_uri} #{IDX}): valid" in text
    assert "result: VERIFIED" in text


def test_verify_online_with_given_keys_fetches_only_the_list(published, http_server):
    code, body = run(*verify_args(published, "--online", "--jwks", published.jwks))

    assert (code, body["verdict"]) == (0, "verified")
    assert http_server.requests == [LIST_PATH]


def test_a_supplied_list_is_not_fetched_again(published, http_server, tmp_path):
    supplied = tmp_path / "list.jwt"
    supplied.write_bytes(published.status_list(status=1))

    code, body = run(*verify_args(published, "--online", "--status-list", supplied))

    assert (code, body["reasons"]) == (1, ["revoked"])
    assert http_server.requests == [HISTORY_PATH]


def test_token_online_with_the_issuer_pinned(published, http_server):
    code, body = run(*token_args(published, "--online", "--issuer", published.issuer))

    assert code == 0, body
    assert (body["result"], body["reasons"]) == ("valid", [])
    assert [item["kind"] for item in body["fetched"]] == ["key_history", "status_list"]
    assert http_server.requests == [HISTORY_PATH, LIST_PATH]


def test_token_online_revoked_is_invalid(published, http_server):
    http_server.routes[LIST_PATH] = published.status_list(status=1)

    code, body = run(*token_args(published, "--online", "--jwks", published.jwks))

    assert (code, body["result"]) == (1, "revoked")
    assert http_server.requests == [LIST_PATH]


def test_signed_online_checks_a_receipt_with_its_issuers_history(published, http_server):
    code, body = run("signed", published.receipt, "--online")

    assert code == 0, body
    assert (body["result"], body["typ"], body["period_checked"]) == (
        "valid",
        RECEIPT_TYP,
        True,
    )
    assert http_server.requests == [HISTORY_PATH]


@pytest.mark.parametrize("command", ["verify", "token"])
def test_a_server_that_hangs_past_the_timeout_is_status_unknown(published, http_server, command):
    http_server.hanging.add(LIST_PATH)
    argv = verify_args(published) if command == "verify" else token_args(published)

    started = time.monotonic()
    code, body = run(*argv, "--online", "--keys", published.issuer + HISTORY_PATH, "--timeout", "1")
    elapsed = time.monotonic() - started

    assert code == 2, body
    assert elapsed < 2.5
    assert body["reasons"] == ["status_unknown"]
    detail = body["consents"][0]["detail"] if command == "verify" else body["detail"]
    assert (
        detail == f"its status list {published.list_uri} could not be fetched: timed out after 1 s"
    )


def test_an_http_error_is_status_unknown(published, http_server):
    http_server.errors[LIST_PATH] = 500

    code, body = run(*verify_args(published, "--online"))

    assert code == 2, body
    assert (body["verdict"], body["reasons"]) == ("indeterminate", ["status_unknown"])
    assert body["assertion"]["status"] == "valid"
    (consent,) = body["consents"]
    assert consent["status"] == "unknown"
    assert consent["detail"] == (
        f"its status list {published.list_uri} could not be fetched: HTTP 500 Internal Server Error"
    )
    code, text = run_text(*verify_args(published, "--online"))
    assert code == 2
    assert f"status list {published.list_uri}: could not be fetched: HTTP 500" in text
    assert "result: INDETERMINATE" in text


def test_a_fetched_list_that_does_not_verify_is_status_unknown(published, http_server):
    http_server.routes[LIST_PATH] = published.status_list(signer=LocalSigner.generate("EdDSA"))

    code, body = run(*verify_args(published, "--online"))

    assert (code, body["reasons"]) == (2, ["status_unknown"])
    assert "was fetched but did not verify: status_list_signature" in body["consents"][0]["detail"]


@pytest.mark.parametrize(
    "history",
    ["error", "other-issuer", "forged", "not-a-history"],
)
def test_a_key_history_that_cannot_be_had_is_keys_unknown(published, http_server, history):
    if history == "error":
        http_server.errors[HISTORY_PATH] = 503
    elif history == "other-issuer":
        http_server.routes[HISTORY_PATH] = published.history(issuer="https://registry.example")
    elif history == "forged":
        # Someone else's history: signed by a key it lists, but not the one that signed.
        http_server.routes[HISTORY_PATH] = published.history(signer=LocalSigner.generate("EdDSA"))
    else:
        http_server.routes[HISTORY_PATH] = b"not a history"

    code, body = run(*token_args(published, "--online"))
    signed_code, signed_body = run("signed", published.receipt, "--online")

    if history == "forged":
        # The history itself verifies; the token's key is not in it: a bad signature.
        assert (code, body["result"]) == (1, "signature")
        assert (signed_code, signed_body["result"]) == (1, "unknown_key")
        return
    assert (code, body["result"], body["reasons"]) == (2, "keys_unknown", ["keys_unknown"])
    assert body["detail"].startswith(f"the key history {published.issuer}{HISTORY_PATH} ")
    assert body["claims"] is None
    assert (signed_code, signed_body["result"]) == (2, "keys_unknown")
    # Nothing else was asked for: the list is fetched only for a token whose signature holds.
    assert LIST_PATH not in http_server.requests


def test_verify_without_keys_for_the_assertion_is_indeterminate(published, http_server):
    http_server.errors[HISTORY_PATH] = 404

    code, body = run(*verify_args(published, "--online"))

    assert (code, body["verdict"]) == (2, "indeterminate")
    assert body["reasons"] == ["keys_unknown", "status_unknown"]
    assert body["assertion"]["status"] == "unchecked"
    assert "could not be fetched: HTTP 404" in body["assertion"]["detail"]
    assert body["consents"][0]["detail"].startswith(
        f"its status list {published.list_uri} could not be checked: the key history"
    )
    assert http_server.requests.count(HISTORY_PATH) == 1


def test_a_remote_uri_that_is_not_https_is_not_fetched(
    published, http_server, identity, facts, make_image, tmp_path
):
    plain = "http://registry.example/v1/status-lists/1"
    refs = (ConsentRef(jti="tok-2", status_list_uri=plain, status_idx=IDX),)
    image = tmp_path / "plain.jpg"
    image.write_bytes(
        sign(
            make_image(), "image/jpeg", msgspec.structs.replace(facts, consent_refs=refs), identity
        )
    )

    code, body = run(
        "verify", image, "--trust", published.anchor, "--jwks", published.jwks, "--online"
    )

    assert (code, body["verdict"], body["reasons"]) == (2, "indeterminate", ["status_unknown"])
    (consent,) = body["consents"]
    assert consent["detail"] == (
        f"its status list {plain} was not fetched: --online fetches only https:// URIs "
        "(http:// only from 127.0.0.1 or localhost)"
    )
    assert body["fetched"][0]["uri"] == plain
    assert http_server.requests == []


def test_a_redirect_away_from_what_may_be_fetched_is_not_followed(published, http_server):
    http_server.redirects[LIST_PATH] = "http://registry.example/list"

    code, body = run(*verify_args(published, "--online", "--jwks", published.jwks))

    assert (code, body["reasons"]) == (2, ["status_unknown"])
    assert (
        "redirected to http://registry.example/list, not followed"
        in (body["consents"][0]["detail"])
    )
    assert http_server.requests == [LIST_PATH]


def test_without_online_no_request_is_made(published, http_server):
    code, body = run(*verify_args(published, "--jwks", published.jwks))
    assert (code, body["reasons"]) == (2, ["status_unknown"])
    assert body["fetched"] == []
    code, body = run(*token_args(published, "--jwks", published.jwks))
    assert (code, body["result"]) == (2, "status_unknown")
    assert "fetched" not in body

    assert http_server.requests == []


@pytest.mark.parametrize("value", ["0", "-1", "301", "nan", "inf", "soon"])
def test_the_timeout_is_range_checked(published, value, capsys):
    with pytest.raises(SystemExit) as caught:
        main([*map(str, token_args(published, "--online")), "--timeout", value])

    assert caught.value.code == 64
    assert "--timeout" in capsys.readouterr().err


def test_what_a_broken_manifest_names_is_not_fetched(published, http_server, tmp_path):
    tampered = bytearray(published.image.read_bytes())
    tampered[-10] ^= 0x01
    image = tmp_path / "tampered.jpg"
    image.write_bytes(bytes(tampered))

    code, body = run("verify", image, "--trust", published.anchor, "--online")

    assert (code, body["verdict"], body["report"]["state"]) == (1, "invalid", "invalid")
    assert http_server.requests == []
