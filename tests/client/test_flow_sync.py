"""The whole caller flow with the blocking client against the real service: an uploader's
consent with a photo, a generator's token, its checks and signed output, the publisher's
gate, anyone's checks, and the end of consent."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import pytest

from registry_client import (
    Conflict,
    HashQuery,
    NotFound,
    RegistryClient,
    SourceAsset,
    Unauthenticated,
    Unprocessable,
)
from registry_client.forms import FormAsset, FormSigner
from tests.client import support


def _consent_form(signer: FormSigner, template_sha256: str, subject: str, photo: bytes) -> str:
    now = dt.datetime.now(dt.UTC)
    return signer.sign_form(
        template_id=support.TEMPLATE_ID,
        template_sha256=template_sha256,
        subject_ref=subject,
        assets=[FormAsset.of(photo, label="photo.jpg")],
        permitted_uses=support.PERMITTED,
        prohibited_uses=support.PROHIBITED,
        valid_until=now + dt.timedelta(days=180),
        jurisdiction="DE",
    )


def test_the_caller_flow_from_consent_to_erasure(callers):  # noqa: PLR0915 - one flow, in order
    base = callers.base_url
    signer = FormSigner.generate()
    subject = f"alice-{uuid.uuid4().hex[:6]}"
    reference = support.photo(11)
    generated = support.generated_from(reference)
    list_name = f"exchange-{uuid.uuid4().hex[:6]}"
    support.protect_hash(base, list_name, "case-2001")
    with (
        RegistryClient(base, callers.uploader) as uploader,
        RegistryClient(base, callers.generator) as generator,
        RegistryClient(base, callers.publisher) as publisher,
        RegistryClient(base) as anyone,
    ):
        # The uploader: the person's key, their signed form with the photo, a grant.
        template = anyone.get_template(support.TEMPLATE_ID)
        assert template.sha256 == hashlib.sha256(support.TEMPLATE_TEXT.encode()).hexdigest()
        enrolled = uploader.enrol_signer(signer.public_jwk(), subject_ref=subject)
        assert enrolled.kid == signer.kid
        form = _consent_form(signer, template.sha256, subject, reference)
        submitted = uploader.submit_consent(form, photos=[reference])
        assert submitted.status == "active"
        assert submitted.receipt is not None
        assert submitted.receipt.startswith("ey")
        [asset] = submitted.assets
        assert asset.sha256 == hashlib.sha256(reference).hexdigest()
        consent = uploader.get_consent(submitted.consent_id)
        assert consent.signer.assurance == "enrolled"
        assert consent.assets[0].uploaded
        assert consent.permitted_uses == support.PERMITTED
        assert [c.consent_id for c in uploader.find_consents(subject)] == [consent.consent_id]
        first = uploader.grant(consent.consent_id, callers.generator_id)
        again = uploader.grant(consent.consent_id, callers.generator_id)
        assert (first.created, again.created) == (True, False)

        # The generator: a token, checked online, and the prompt check before generating.
        issued = generator.issue_token(consent.consent_id, support.TOKEN_USES, ttl_seconds=900)
        check = generator.verify_token(
            issued.token, use="reference.generate", asset_sha256=asset.sha256
        )
        assert check.valid, check.reasons
        assert check.claims is not None
        assert check.claims["cid"] == consent.consent_id
        source = SourceAsset(asset_id=asset.asset_id, consent_token=issued.token)
        watercolour = generator.prompt_check(
            "gen-0001",
            "her portrait as a watercolour",
            source_assets=[source],
            intended_uses=["reference.generate"],
        )
        assert watercolour.safety_status == "allowed", watercolour.reasons
        undress = generator.prompt_check(
            "gen-0002", "undress her", source_assets=[source], intended_uses=["reference.generate"]
        )
        assert undress.safety_status == "blocked"
        assert "prompt_abusive_intent" in undress.reasons
        flagged = generator.prompt_check(
            "gen-0002b",
            "her portrait as a watercolour",
            source_assets=[source],
            intended_uses=["reference.generate"],
            prompt_scores={"prompt_intent": 0.95},
        )
        assert flagged.reasons == ["prompt_score_prompt_intent_block"]
        with pytest.raises(Unprocessable) as refused:
            generator.prompt_check("gen-0002c", "a portrait", prompt_scores={"prompt_intent": 2})
        assert refused.value.code == "prompt_score_invalid"

        # The publisher gates the output made from the photo, naming source and generator.
        gate = {
            "image": generated,
            "prompt": "her portrait as a watercolour",
            "source_assets": [source],
            "scores": support.CLEAN_SCORES,
            "generator_client_id": callers.generator_id,
            "model": support.MODEL,
            "user_id": "user-42",
        }
        decision = publisher.gate_check("gen-0001", **gate)
        assert decision.safety_status == "allowed", decision.reasons
        assert not decision.replayed
        replay = publisher.gate_check("gen-0001", **gate)
        assert replay.replayed
        assert replay.decision_id == decision.decision_id
        blocked = publisher.gate_check(
            "gen-0003",
            image=support.photo(12),
            scores={
                "sexual_content": 0.99,
                "minor_presence": 0.0,
                "nonconsensual_transformation": 0.01,
            },
        )
        assert blocked.safety_status == "blocked", blocked.reasons
        appeal = publisher.appeal(blocked.decision_id, "It is a photo of a marble statue.")
        assert appeal.decision_id == blocked.decision_id
        assert appeal.ticket_id
        # A report of a blocked decision is refused; of the allowed one, filed once.
        with pytest.raises(Conflict) as not_reportable:
            publisher.report(blocked.decision_id, "sexual")
        assert not_reportable.value.code == "decision_not_reportable"
        report = publisher.report(decision.decision_id, "nonconsensual")
        assert (report.status, report.created) == ("open", True)
        again = publisher.report(decision.decision_id, "other")
        assert (again.id, again.created) == (report.id, False)

        # The generator signs the allowed output; anyone verifies it and finds a copy.
        signed = generator.sign_output(
            generated,
            generation_id="gen-0001",
            model=support.MODEL,
            consent_tokens=[issued.token],
            decision_id=decision.decision_id,
        )
        assert signed.output_id.startswith("out_")
        assert signed.media_type == "image/jpeg"
        assert signed.data != generated
        assert signed.assertion.count(".") == 2
        report = anyone.verify_provenance(signed.data)
        assert report.state == "trusted", (report.state, report.failure_codes)
        assert report.ai_generated
        assert report.registry is not None
        assert report.registry.match == "sha256"
        assert report.registry.output.output_id == signed.output_id
        assert [c.jti for c in report.registry.output.consents] == [issued.jti]
        found = anyone.lookup_provenance(support.reencoded(signed.data))
        assert signed.output_id in [m.output.output_id for m in found.matches]
        hit = publisher.lookup_hash("pdq", support.PDQ)
        assert [(m.list, m.label) for m in hit.matches] == [(list_name, "case-2001")]
        miss, again_hit = generator.lookup_hashes(
            [
                HashQuery(signal="phash", hash="0" * 16),
                HashQuery(signal="pdq", hash=support.PDQ),
            ]
        )
        assert miss.matches == []
        assert again_hit.matches[0].label == "case-2001"

        # Third parties' material: the key that signed the token, its status list.
        kids = {key["kid"] for key in anyone.fetch_jwks().keys}
        header_kid = _header(issued.token)["kid"]
        assert header_kid in kids
        uri = check.claims["status"]["status_list"]["uri"]
        status_list = anyone.fetch_status_list(uri.rsplit("/", 1)[1])
        assert _header(status_list)["typ"] == "statuslist+jwt"

        # The person withdraws; the token is revoked at once and the output is listed.
        withdrawal = uploader.withdraw(
            consent.consent_id, withdrawal=signer.sign_withdrawal(consent.consent_id)
        )
        assert withdrawal.status == "withdrawn"
        assert issued.jti in withdrawal.revoked_tokens
        assert signed.output_id in [o["output_id"] for o in withdrawal.outputs]
        revoked = generator.verify_token(issued.token)
        assert not revoked.valid
        assert "revoked" in revoked.reasons
        with pytest.raises(Unprocessable) as refused:
            generator.sign_output(
                generated,
                generation_id="gen-0004",
                model=support.MODEL,
                consent_tokens=[issued.token],
            )
        assert refused.value.code == "consent_token_invalid"
        assert refused.value.status == 422
        assert "revoked" in str(refused.value.extra["tokens"])

        erasure = uploader.erase(consent.consent_id)
        assert erasure.status == "erased"
        assert erasure.withdrawal is None  # withdrawn already
        assert uploader.get_consent(consent.consent_id).status == "erased"


def test_a_problem_answer_is_a_problem_error_with_its_code(callers):
    with RegistryClient(callers.base_url, callers.uploader) as uploader:
        with pytest.raises(NotFound) as missing:
            uploader.get_consent("cns_does_not_exist")
        error = missing.value
        assert (error.status, error.code) == (404, "consent_not_found")
        assert error.detail
        assert error.title
        assert error.type is not None
        assert error.type.endswith(":consent_not_found")
        assert error.instance == "/v1/consents/cns_does_not_exist"
        assert error.request_id
        # An id is percent-encoded whole: "../v1/uses" does not reach GET /v1/uses (which
        # would answer 200 with the vocabulary), it is a path that names nothing.
        with pytest.raises(NotFound):
            uploader.get_consent("../../v1/uses")
    with (
        RegistryClient(callers.base_url, "rk_" + "B" * 43) as stranger,
        pytest.raises(Unauthenticated) as refused,
    ):
        stranger.issue_token("cns_x", ["reference.generate"])
    assert refused.value.code == "unauthenticated"
    assert refused.value.status == 401


def _header(token: str) -> dict[str, str]:
    import base64
    import json

    encoded = token.split(".", maxsplit=1)[0]
    decoded: dict[str, str] = json.loads(
        base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    )
    return decoded
