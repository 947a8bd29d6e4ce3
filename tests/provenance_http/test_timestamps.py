"""POST /v1/provenance/sign with REGISTRY_C2PA_TSA_URL: a real local TSA (``openssl ts
-reply``) stamps every output, a TSA that fails refuses the signing with nothing stored, and
the CAWG training-and-data-mining assertion follows the consents. Everything is read back
with the c2pa SDK and only published material (our anchor, the TSA's root)."""

from __future__ import annotations

import io
import json

import c2pa
import pytest

from registry.compose import check_settings
from registry.core.settings import SettingsError
from tests.provenance_http.conftest import counts, file_part, picture
from tests.support import assert_problem, make_settings
from tests.tsa import TSA_NAME, local_tsa

tsa = local_tsa


@pytest.fixture
def settings(service_database_url, tmp_path, tsa):
    """The service on this test's database, stamping with the local TSA."""
    return make_settings(
        service_database_url,
        tmp_path,
        c2pa_tsa_url=tsa.url,
        c2pa_tsa_allowed_hosts="127.0.0.1",
        c2pa_tsa_trust_anchors=tsa.root,
    )


def sdk_read(data: bytes, anchors_pem: str) -> dict:
    settings = {
        "verify": {"remote_manifest_fetch": False, "verify_trust": True},
        "trust": {"trust_anchors": anchors_pem},
    }
    with (
        c2pa.Context.from_dict(settings) as context,
        c2pa.Reader("image/jpeg", io.BytesIO(data), None, context) as reader,
    ):
        return json.loads(reader.json())


def sdk_codes(store: dict, kind: str) -> set[str]:
    return {entry["code"] for entry in store["validation_results"]["activeManifest"][kind]}


def training_entries(store: dict) -> dict:
    manifest = store["manifests"][store["active_manifest"]]
    (assertion,) = [a for a in manifest["assertions"] if a["label"] == "cawg.training-mining"]
    return assertion["data"]["entries"]


async def test_a_signed_output_carries_a_trusted_rfc3161_timestamp(world, sign_output, tsa):
    _, token = await world.granted_token()

    response = await sign_output(picture(61), tokens=[token["token"]])

    assert response.status_code == 200, response.text
    assert tsa.requests == 1
    anchor = (await world.http.get("/v1/keys/c2pa/anchor")).text
    store = sdk_read(response.content, anchor + tsa.anchor_pem)
    assert store["validation_state"] == "Trusted"
    assert {"timeStamp.validated", "timeStamp.trusted"} <= sdk_codes(store, "success")
    assert store["manifests"][store["active_manifest"]]["signature_info"]["time"]
    # Our own verification trusts the TSA for timestamps (REGISTRY_C2PA_TSA_TRUST_ANCHORS).
    body = (
        await world.http.post("/v1/provenance/verify", files=file_part(response.content))
    ).json()
    assert body["state"] == "trusted"
    assert body["timestamp"]["trusted"] is True
    assert body["timestamp"]["authority"] == TSA_NAME
    assert body["timestamp"]["time"] == body["signing_time"]
    assert body["registry"]["output"]["output_id"] == response.headers["provenance-output-id"]


async def test_with_our_anchor_alone_the_sdk_reports_the_timestamp_untrusted(
    world, sign_output, tsa
):
    _, token = await world.granted_token()
    response = await sign_output(picture(62), tokens=[token["token"]])
    anchor = (await world.http.get("/v1/keys/c2pa/anchor")).text

    store = sdk_read(response.content, anchor)

    assert store["validation_state"] == "Trusted"
    assert "timeStamp.untrusted" in sdk_codes(store, "informational")


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("down", "unreachable"),
        ("error", "unreachable"),
        ("garbage", "bad_reply"),
        ("wrong_nonce", "bad_reply"),
        ("untrusted", "untrusted"),
    ],
)
async def test_a_tsa_that_fails_refuses_the_signing_and_nothing_is_stored(
    world, sign_output, database_url, tsa, mode, reason
):
    _, token = await world.granted_token()
    if mode == "down":
        tsa.stop()
    else:
        tsa.mode = mode
    before = await counts(database_url)

    response = await sign_output(picture(63), tokens=[token["token"]])

    body = assert_problem(response, 503, "timestamp_unavailable")
    assert body["reason"] == reason
    assert "nothing was signed" in body["detail"]
    assert tsa.url not in body["detail"]
    assert response.headers["retry-after"]
    assert "provenance-assertion" not in response.headers
    assert await counts(database_url) == before
    # The generation was not used up: once the TSA answers again, it signs.
    if mode != "down":
        tsa.mode = "ok"
        again = await sign_output(picture(63), tokens=[token["token"]])
        assert again.status_code == 200, again.text


async def test_a_tsa_name_resolving_to_a_refused_address_is_never_asked(
    app_with, world, database_url, tsa
):
    # "localhost" is listed by name, but its address (loopback) is not listed itself.
    refusing = app_with(
        c2pa_tsa_url=f"http://localhost:{tsa.port}/tsa",
        c2pa_tsa_allowed_hosts="localhost",
        c2pa_tsa_trust_anchors=tsa.root,
    )
    _, token = await world.granted_token()
    before = await counts(database_url)
    async with refusing as http:
        response = await http.post(
            "/v1/provenance/sign",
            files={
                "file": ("output.jpeg", picture(64), "image/jpeg"),
                "metadata": (
                    None,
                    json.dumps(
                        {"generation_id": "g", "model": "m", "consent_tokens": [token["token"]]}
                    ),
                    "application/json",
                ),
            },
            headers=world.generator.headers,
        )

    body = assert_problem(response, 503, "timestamp_unavailable")
    assert body["reason"] == "not_allowed"
    assert tsa.requests == 0
    assert await counts(database_url) == before


async def test_training_is_not_allowed_when_a_consent_does_not_grant_it(world, sign_output, tsa):
    _, token = await world.granted_token()

    response = await sign_output(picture(65), tokens=[token["token"]])

    entries = training_entries(sdk_read(response.content, tsa.anchor_pem))
    assert {key: entry["use"] for key, entry in entries.items()} == {
        "cawg.ai_generative_training": "notAllowed",
        "cawg.ai_training": "notAllowed",
        "cawg.data_mining": "notAllowed",
        "cawg.ai_inference": "notAllowed",
    }


async def training_token(world) -> str:
    """A token carrying ai.training, from a consent that permits it."""
    consent = await world.consent(
        permitted_uses=["reference.generate", "ai.training"], prohibited_uses=["content.explicit"]
    )
    assert (await world.grant(consent["consent_id"])).status_code == 201
    response = await world.token(consent["consent_id"], uses=["reference.generate", "ai.training"])
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


async def test_training_granted_by_every_consent_is_constrained_to_them(world, sign_output, tsa):
    tokens = [await training_token(world), await training_token(world)]

    response = await sign_output(picture(66), tokens=tokens)

    assert response.status_code == 200, response.text
    anchor = (await world.http.get("/v1/keys/c2pa/anchor")).text
    entries = training_entries(sdk_read(response.content, anchor))
    for key in ("cawg.ai_generative_training", "cawg.ai_training"):
        assert entries[key]["use"] == "constrained"
        assert "status list" in entries[key]["constraint_info"]
    assert entries["cawg.data_mining"]["use"] == "notAllowed"
    body = (
        await world.http.post("/v1/provenance/verify", files=file_part(response.content))
    ).json()
    assert {(e["key"], e["use"]) for e in body["training_mining"]} >= {
        ("cawg.ai_training", "constrained")
    }


async def test_one_consent_without_training_makes_it_not_allowed(world, sign_output, tsa):
    _, plain = await world.granted_token()
    tokens = [await training_token(world), plain["token"]]

    response = await sign_output(picture(67), tokens=tokens)

    assert response.status_code == 200, response.text
    entries = training_entries(sdk_read(response.content, tsa.anchor_pem))
    assert entries["cawg.ai_training"] == {"use": "notAllowed"}


async def test_an_output_without_any_consent_says_training_is_not_allowed(world, sign_output, tsa):
    response = await sign_output(picture(68), tokens=[])

    assert response.status_code == 200, response.text
    entries = training_entries(sdk_read(response.content, tsa.anchor_pem))
    assert entries["cawg.ai_generative_training"] == {"use": "notAllowed"}


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"c2pa_tsa_allowed_hosts": "tsa.example"}, "REGISTRY_C2PA_TSA_ALLOWED_HOSTS"),
        ({"c2pa_tsa_allowed_hosts": ""}, "REGISTRY_C2PA_TSA_ALLOWED_HOSTS"),
        ({"c2pa_tsa_trust_anchors": None}, "REGISTRY_C2PA_TSA_TRUST_ANCHORS"),
        ({"c2pa_tsa_url": "ftp://127.0.0.1/tsa"}, "REGISTRY_C2PA_TSA_URL"),
        ({"c2pa_tsa_url": "http://user:pw@127.0.0.1/tsa"}, "REGISTRY_C2PA_TSA_URL"),
        ({"c2pa_tsa_trust_anchors": "not-pem"}, "REGISTRY_C2PA_TSA_TRUST_ANCHORS"),
    ],
)
def test_settings_that_cannot_stamp_stop_the_start(tsa, tmp_path, changes, named):
    values = {
        "c2pa_tsa_url": tsa.url,
        "c2pa_tsa_allowed_hosts": "127.0.0.1",
        "c2pa_tsa_trust_anchors": tsa.root,
        **changes,
    }
    if values["c2pa_tsa_trust_anchors"] == "not-pem":
        bad = tmp_path / "not.pem"
        bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        values["c2pa_tsa_trust_anchors"] = bad

    with pytest.raises(SettingsError, match=named):
        check_settings(make_settings("postgresql://localhost/x", tmp_path, **values))


def test_tsa_anchors_alone_are_accepted_for_verification(tsa, tmp_path):
    check_settings(
        make_settings("postgresql://localhost/x", tmp_path, c2pa_tsa_trust_anchors=tsa.root)
    )
