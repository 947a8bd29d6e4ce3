"""The caller flow with the asyncio client against the real service: a consent sent as its
signed hashes only (the photo stays on the device), checks run concurrently, the gate given
the output by address (``image_url``, fetched from a local server), then signing, checking
and the end of consent."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import uuid

import pytest

from registry_client import AsyncRegistryClient, Conflict, SourceAsset
from registry_client.forms import FormAsset, FormSigner
from tests.client import support


async def test_the_caller_flow_with_the_async_client(callers):
    base = callers.base_url
    signer = FormSigner.generate()
    subject = f"bea-{uuid.uuid4().hex[:6]}"
    reference = support.photo(21)
    generated = support.generated_from(reference)
    served = support.ScriptedServer(support.Reply(200, {"Content-Type": "image/jpeg"}, generated))
    async with (
        AsyncRegistryClient(base, callers.uploader) as uploader,
        AsyncRegistryClient(base, callers.generator) as generator,
        AsyncRegistryClient(base, callers.publisher) as publisher,
        AsyncRegistryClient(base) as anyone,
    ):
        template = await anyone.get_template(support.TEMPLATE_ID)
        enrolled = await uploader.enrol_signer(
            signer.public_jwk(), subject_ref=subject, role="subject"
        )
        assert enrolled.kid == signer.kid
        form = signer.sign_form(
            template_id=template.id,
            template_sha256=template.sha256,
            subject_ref=subject,
            assets=[FormAsset.of(reference)],
            permitted_uses=support.PERMITTED,
            prohibited_uses=support.PROHIBITED,
            valid_until=dt.datetime.now(dt.UTC) + dt.timedelta(days=30),
            jurisdiction="DE",
        )
        # The same Idempotency-Key twice: one record (a retry after a lost answer is safe).
        key = str(uuid.uuid4())
        submitted = await uploader.submit_consent(form, idempotency_key=key)
        resent = await uploader.submit_consent(form, idempotency_key=key)
        assert resent.consent_id == submitted.consent_id
        [asset] = submitted.assets
        consent = await uploader.get_consent(submitted.consent_id)
        assert not consent.assets[0].uploaded
        assert consent.assets[0].sha256 == hashlib.sha256(reference).hexdigest()
        await uploader.grant(consent.consent_id, callers.generator_id)

        issued = await generator.issue_token(consent.consent_id, support.TOKEN_USES)
        source = SourceAsset(
            asset_id=asset.asset_id, consent_token=issued.token, sha256=asset.sha256
        )
        check, before = await asyncio.gather(
            generator.verify_token(issued.token, use="publish.public"),
            generator.prompt_check(
                "gen-a1",
                "her portrait as a watercolour",
                source_assets=[source],
                intended_uses=["reference.generate"],
            ),
        )
        assert check.valid, check.reasons
        assert before.safety_status == "allowed", before.reasons

        with support.serving(served):
            decision = await publisher.gate_check(
                "gen-a1",
                image_url=served.base_url + "/outputs/gen-a1.jpg",
                prompt="her portrait as a watercolour",
                source_assets=[source],
                scores=support.CLEAN_SCORES,
                generator_client_id=callers.generator_id,
                model=support.MODEL,
                timestamp=dt.datetime.now(dt.UTC),
            )
        assert decision.safety_status == "allowed", decision.reasons
        assert [path for _, path, _ in served.requests] == ["/outputs/gen-a1.jpg"]
        # Another image under the same generation_id is a conflict, not a new decision.
        with pytest.raises(Conflict) as conflict:
            await publisher.gate_check(
                "gen-a1", image=support.photo(22), scores=support.CLEAN_SCORES
            )
        assert conflict.value.code == "generation_conflict"

        signed = await generator.sign_output(
            generated,
            generation_id="gen-a1",
            model=support.MODEL,
            consent_tokens=[issued.token],
            decision_id=decision.decision_id,
        )
        report, found = await asyncio.gather(
            anyone.verify_provenance(signed.data),
            anyone.lookup_provenance(support.reencoded(signed.data)),
        )
        assert report.state == "trusted", report.failure_codes
        assert report.registry is not None
        assert report.registry.output.output_id == signed.output_id
        assert signed.output_id in [m.output.output_id for m in found.matches]
        jwks = await anyone.fetch_jwks()
        assert jwks.keys

        withdrawal = await uploader.withdraw(
            consent.consent_id, withdrawal=signer.sign_withdrawal(consent.consent_id)
        )
        assert issued.jti in withdrawal.revoked_tokens
        assert signed.output_id in [o["output_id"] for o in withdrawal.outputs]
        assert not (await publisher.verify_token(issued.token, audience=callers.generator_id)).valid
        erasure = await uploader.erase(consent.consent_id)
        assert erasure.status == "erased"
