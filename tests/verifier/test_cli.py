"""The offline verifier CLI, on real files: exit codes, consent status, escaping, URLs.

Exit status: 0 verified, 1 invalid, 2 indeterminate (a status that could not be checked),
64 usage or I/O error.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from keys.jws import sign_compact
from keys.signer import LocalSigner
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
from verifier.statuslist import StatusList, status_list_claims

REPO = Path(__file__).resolve().parents[2]
LIST_URI = "https://registry.example/status/1"
ISSUER = "https://registry.example"


def status_list_token(signer, *, statuses=None, uri=LIST_URI, age=0, lifetime=None):
    """A signed list issued ``age`` seconds ago, cacheable for 300 s, acceptable ``lifetime``."""
    status_list = StatusList(size=64, bits=2)
    for idx, value in (statuses or {}).items():
        status_list.set(idx, value)
    claims = status_list_claims(
        uri=uri,
        issuer=ISSUER,
        status_list=status_list,
        issued_at=datetime.now(UTC) - timedelta(seconds=age),
        ttl_seconds=300,
        lifetime_seconds=lifetime,
    )
    return sign_compact(json.dumps(claims).encode(), signer, typ="statuslist+jwt")


@pytest.fixture(scope="module")
def published(tmp_path_factory, identity, facts, make_image):
    """Everything a third party gets: the image, our anchor, JWKS, assertion, status lists."""
    root = tmp_path_factory.mktemp("published")
    token_signer = LocalSigner.generate("EdDSA")
    signed = sign(make_image(), "image/jpeg", facts, identity)
    decoded = decode(signed, ImageLimits(max_bytes=10**6, max_pixels=10**6), hash_only=True)
    claims = ProvenanceClaims.build(
        iss=ISSUER,
        jti="out-1",
        sha256=sha256_hex(signed),
        phash=perceptual_hashes(decoded.image).phash,
        generation_id=facts.generation_id,
        consents=facts.consent_refs,
        decision=facts.decision,
    )
    tampered = bytearray(signed)
    tampered[-10] ^= 0x01
    files = {
        "image": signed,
        "tampered": bytes(tampered),
        "anchor": identity.anchor_pem.encode(),
        "jwks": json.dumps({"keys": [token_signer.public_jwk()]}).encode(),
        "assertion": sign_assertion(claims, token_signer).encode(),
        "valid_list": status_list_token(token_signer).encode(),
        "revoked_list": status_list_token(token_signer, statuses={7: 1}).encode(),
        "suspended_list": status_list_token(token_signer, statuses={7: 2}).encode(),
        "forged_list": status_list_token(LocalSigner.generate("EdDSA")).encode(),
        # Past its ttl, though its exp is an hour away: stale, whatever it says.
        "stale_list": status_list_token(token_signer, age=400, lifetime=3600).encode(),
        "expired_list": status_list_token(token_signer, age=400).encode(),
    }
    paths = {}
    for name, content in files.items():
        paths[name] = root / name
        paths[name].write_bytes(content)
    paths["token_signer"] = token_signer
    return paths


def args(published, *extra, image="image"):
    return [
        "verify",
        str(published[image]),
        "--trust",
        str(published["anchor"]),
        "--jwks",
        str(published["jwks"]),
        *extra,
    ]


def run(argv):
    out = io.StringIO()
    return main(argv, stdout=out), out.getvalue()


def run_process(argv):
    return subprocess.run(
        [sys.executable, "-m", "verifier", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_exit_0_for_our_image_with_valid_consent(published):
    result = run_process(
        args(
            published,
            "--assertion",
            str(published["assertion"]),
            "--status-list",
            str(published["valid_list"]),
        )
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "C2PA provenance: trusted" in result.stdout
    assert "detached assertion: valid" in result.stdout
    assert "consent tok-1 (https://registry.example/status/1 #7): valid" in result.stdout
    assert "AI-generated: yes" in result.stdout
    assert "result: VERIFIED" in result.stdout


def test_exit_1_for_a_tampered_copy(published):
    result = run_process(
        args(published, "--status-list", str(published["valid_list"]), image="tampered")
    )

    assert result.returncode == 1
    assert "C2PA provenance: invalid" in result.stdout
    assert "assertion.dataHash.mismatch" in result.stdout
    assert "result: INVALID" in result.stdout
    assert "  - provenance_invalid: C2PA provenance is invalid, not trusted" in result.stdout


def test_exit_64_for_a_missing_image():
    result = run_process(["verify", "/nonexistent/image.jpg"])

    assert result.returncode == 64
    assert "cannot read" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_imports_nothing_that_needs_the_service():
    code = (
        "import sys, verifier.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'asyncpg', 'litestar', 'registry'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"


def test_json_output_carries_report_checks_and_verdict(published):
    code, output = run(
        args(
            published,
            "--json",
            "--assertion",
            str(published["assertion"]),
            "--status-list",
            str(published["valid_list"]),
        )
    )

    body = json.loads(output)
    assert code == 0
    assert body["verdict"] == "verified"
    assert body["reasons"] == []
    assert body["report"]["state"] == "trusted"
    assert body["assertion"]["status"] == "valid"
    assert body["assertion"]["claims"]["jti"] == "out-1"
    (consent,) = body["consents"]
    assert consent["status"] == "valid"
    assert consent["reason"] is None
    assert consent["sources"] == ["manifest", "assertion"]


@pytest.mark.parametrize(
    ("status_list", "expected"),
    [("revoked_list", "revoked"), ("suspended_list", "suspended")],
    ids=["revoked", "suspended"],
)
def test_exit_1_when_a_consent_is_not_valid(published, status_list, expected):
    code, output = run(args(published, "--status-list", str(published[status_list])))

    assert code == 1
    assert f"consent tok-1 (https://registry.example/status/1 #7): {expected}" in output
    assert "result: INVALID" in output
    assert f"  - {expected}: consent tok-1 is {expected}" in output
    body = json.loads(
        run(args(published, "--json", "--status-list", str(published[status_list])))[1]
    )
    assert (body["verdict"], body["reasons"]) == ("invalid", [expected])
    assert body["consents"][0]["reason"] == expected


@pytest.mark.parametrize(
    ("status_lists", "status", "reason"),
    [
        ([], "unknown", "status_unknown"),
        (["forged_list"], "unknown", "status_unknown"),
        (["stale_list"], "stale", "status_stale"),
        (["expired_list"], "stale", "status_stale"),
        # A forged list beside a stale one changes nothing: only lists that verify count.
        (["stale_list", "forged_list"], "stale", "status_stale"),
    ],
    ids=[
        "list-not-supplied",
        "list-not-signed-by-jwks",
        "list-older-than-its-ttl",
        "list-past-its-exp",
        "stale-and-forged",
    ],
)
def test_exit_2_when_a_consent_status_cannot_be_checked(published, status_lists, status, reason):
    extra = [item for name in status_lists for item in ("--status-list", str(published[name]))]

    code, output = run(args(published, "--assertion", str(published["assertion"]), *extra))

    assert code == 2, output
    assert f"consent tok-1 (https://registry.example/status/1 #7): {status}" in output
    assert "result: INDETERMINATE" in output
    assert f"  - {reason}: consent tok-1 is {status}" in output
    body = json.loads(
        run(args(published, "--json", "--assertion", str(published["assertion"]), *extra))[1]
    )
    assert (body["verdict"], body["reasons"]) == ("indeterminate", [reason])
    assert body["report"]["state"] == "trusted"
    assert body["assertion"]["status"] == "valid"


def test_a_stale_list_is_indeterminate_even_when_it_says_valid(published):
    result = run_process(args(published, "--status-list", str(published["stale_list"])))

    assert result.returncode == 2, result.stdout + result.stderr
    assert "status list (issued" in result.stdout
    assert "is stale: fetch it again" in result.stdout
    assert "result: VERIFIED" not in result.stdout


def test_exit_1_without_our_anchor(published):
    code, output = run(
        [
            "verify",
            str(published["image"]),
            "--jwks",
            str(published["jwks"]),
            "--status-list",
            str(published["valid_list"]),
        ]
    )

    assert code == 1
    assert "C2PA provenance: valid_untrusted" in output


def test_exit_1_when_the_assertion_names_another_image(published, tmp_path):
    other = tmp_path / "other.jpg"
    other.write_bytes(published["image"].read_bytes() + b"\x00")

    code, output = run(
        [
            "verify",
            str(other),
            "--trust",
            str(published["anchor"]),
            "--jwks",
            str(published["jwks"]),
            "--assertion",
            published["assertion"].read_text(),
        ]
    )

    assert code == 1
    assert "detached assertion: INVALID assertion_image_mismatch" in output


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "IMAGE", "--assertion", "a.b.c"],
        ["verify", "IMAGE", "--status-list", "x.jwt"],
        ["verify", "IMAGE", "--trust", "/nonexistent.pem"],
        ["verify", "IMAGE", "--jwks", "/nonexistent.json"],
        ["verify", "IMAGE", "--jwks", "IMAGE"],
        ["verify", "IMAGE", "--jwks", "JWKS", "--status-list", "/nonexistent.jwt"],
        ["verify", "IMAGE", "--jwks", "JWKS", "--jwks", "ftp://example.com/jwks.json"],
        ["token", "a.b.c", "--jwks", "/nonexistent.json"],
        ["token", "a.b.c", "--jwks", "JWKS", "--status-list", "/nonexistent.jwt"],
    ],
    ids=[
        "assertion-without-jwks",
        "status-list-without-jwks",
        "missing-trust",
        "missing-jwks",
        "jwks-not-json",
        "missing-status-list",
        "jwks-not-http",
        "token-missing-jwks",
        "token-missing-status-list",
    ],
)
def test_exit_64_on_usage_and_io_errors(published, argv, capsys):
    substituted = [
        {"IMAGE": str(published["image"]), "JWKS": str(published["jwks"])}.get(item, item)
        for item in argv
    ]

    code, _ = run(substituted)

    assert code == 64
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["verify"],
        ["verify", "IMAGE", "--no-such-option"],
        ["check", "IMAGE"],
        ["token"],
        ["token", "a.b.c"],
        ["token", "a.b.c", "--jwks", "JWKS", "--leeway", "61"],
        ["token", "a.b.c", "--jwks", "JWKS", "--leeway", "soon"],
    ],
    ids=[
        "no-command",
        "verify-without-image",
        "unknown-option",
        "unknown-command",
        "token-without-token",
        "token-without-jwks",
        "leeway-too-large",
        "leeway-not-a-number",
    ],
)
def test_argparse_errors_exit_64(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        main(argv)

    assert caught.value.code == 64
    assert "error:" in capsys.readouterr().err


def test_unknown_option_exits_64_from_the_command_line(published):
    result = run_process([*args(published), "--frobnicate"])

    assert result.returncode == 64
    assert "unrecognized arguments: --frobnicate" in result.stderr
    assert "Traceback" not in result.stderr


def test_urls_are_fetched_only_when_named(
    published, identity, facts, make_image, http_server, tmp_path
):
    list_url = f"{http_server.base_url}/status/1"
    served = msgspec.structs.replace(
        facts, consent_refs=(ConsentRef(jti="tok-5", status_list_uri=list_url, status_idx=5),)
    )
    image = tmp_path / "served.jpg"
    image.write_bytes(sign(make_image(), "image/jpeg", served, identity))
    http_server.routes["/jwks.json"] = published["jwks"].read_bytes()
    http_server.routes["/status/1"] = status_list_token(
        published["token_signer"], uri=list_url
    ).encode()

    code, output = run(
        [
            "verify",
            str(image),
            "--trust",
            str(published["anchor"]),
            "--jwks",
            f"{http_server.base_url}/jwks.json",
            "--status-list",
            list_url,
        ]
    )

    assert code == 0, output
    assert f"consent tok-5 ({list_url} #5): valid" in output
    assert http_server.requests == ["/jwks.json", "/status/1"]


def test_status_list_url_must_serve_the_list_it_names(published, http_server):
    # The server publishes the registry.example list under its own URL: sub does not match.
    http_server.routes["/other"] = published["valid_list"].read_bytes()

    code, output = run(args(published, "--status-list", f"{http_server.base_url}/other"))

    assert code == 2
    assert "status_list_subject_mismatch" in output
    assert "#7): unknown" in output


def test_manifest_text_is_printed_escaped(identity, trust, make_image, raw_sign, tmp_path):
    hostile = "evil\x1b[2J\u202etxt.exe\nresult: VERIFIED"
    manifest = {
        "title": "t.jpg",
        "format": "image/jpeg",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/"
                            "trainedAlgorithmicMedia",
                            "softwareAgent": {"name": hostile},
                        }
                    ]
                },
            }
        ],
    }
    signed, _ = raw_sign(make_image(), "image/jpeg", manifest, identity)
    path = tmp_path / "hostile.jpg"
    path.write_bytes(signed)
    anchor = tmp_path / "anchor.pem"
    anchor.write_text(identity.anchor_pem)

    code, output = run(["verify", str(path), "--trust", str(anchor)])

    assert code == 0
    assert "\x1b" not in output
    assert "\u202e" not in output
    assert "evil\\x1b[2J\\u202etxt.exe\\x0aresult: VERIFIED" in output
    assert output.count("\nresult: VERIFIED") == 1
    body = json.loads(run(["verify", str(path), "--trust", str(anchor), "--json"])[1])
    assert body["report"]["actions"][0]["software_agent"] == hostile


def test_consent_index_outside_the_list_is_unknown(
    published, identity, facts, make_image, tmp_path
):
    outside = msgspec.structs.replace(
        facts,
        consent_refs=(ConsentRef(jti="tok-9", status_list_uri=LIST_URI, status_idx=10_000),),
    )
    path = tmp_path / "outside.jpg"
    path.write_bytes(sign(make_image(), "image/jpeg", outside, identity))

    code, output = run(
        [
            "verify",
            str(path),
            "--trust",
            str(published["anchor"]),
            "--jwks",
            str(published["jwks"]),
            "--status-list",
            str(published["valid_list"]),
        ]
    )

    assert code == 2
    assert "tok-9" in output
    assert "outside the status list" in output
