"""Suspending and resuming a consent with both clients against the real service."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from registry_client import AsyncRegistryClient, Conflict, RegistryClient
from registry_client.forms import FormAsset, FormSigner
from tests.client import support


def _form(signer: FormSigner, template_sha256: str, subject: str) -> str:
    return signer.sign_form(
        template_id=support.TEMPLATE_ID,
        template_sha256=template_sha256,
        subject_ref=subject,
        assets=[FormAsset.of(support.photo(31))],
        permitted_uses=support.PERMITTED,
        prohibited_uses=support.PROHIBITED,
        valid_until=dt.datetime.now(dt.UTC) + dt.timedelta(days=30),
        jurisdiction="DE",
    )


def test_suspend_and_resume_with_the_blocking_client(callers):
    base = callers.base_url
    with (
        RegistryClient(base, callers.uploader) as uploader,
        RegistryClient(base, callers.generator) as generator,
    ):
        signer, subject = FormSigner.generate(), f"cleo-{uuid.uuid4().hex[:6]}"
        uploader.enrol_signer(signer.public_jwk(), subject_ref=subject)
        template = uploader.get_template(support.TEMPLATE_ID)
        consent = uploader.submit_consent(_form(signer, template.sha256, subject))
        uploader.grant(consent.consent_id, callers.generator_id)
        issued = generator.issue_token(consent.consent_id, support.TOKEN_USES)

        suspended = uploader.suspend(consent.consent_id, reason="a dispute is being looked into")
        assert (suspended.status, suspended.suspended_tokens) == ("suspended", [issued.jti])
        assert generator.verify_token(issued.token).reasons == ["suspended"]
        assert uploader.get_consent(consent.consent_id).status == "suspended"
        with pytest.raises(Conflict) as refused:
            uploader.suspend(consent.consent_id)
        assert refused.value.code == "consent_suspended"

        resumed = uploader.resume(consent.consent_id)
        assert (resumed.status, resumed.restored_tokens) == ("active", [issued.jti])
        assert generator.verify_token(issued.token).valid
        with pytest.raises(Conflict) as again:
            uploader.resume(consent.consent_id)
        assert again.value.code == "consent_not_suspended"


async def test_suspend_and_resume_with_the_async_client(callers):
    base = callers.base_url
    async with (
        AsyncRegistryClient(base, callers.uploader) as uploader,
        AsyncRegistryClient(base, callers.generator) as generator,
    ):
        signer, subject = FormSigner.generate(), f"dora-{uuid.uuid4().hex[:6]}"
        await uploader.enrol_signer(signer.public_jwk(), subject_ref=subject)
        template = await uploader.get_template(support.TEMPLATE_ID)
        consent = await uploader.submit_consent(_form(signer, template.sha256, subject))
        await uploader.grant(consent.consent_id, callers.generator_id)
        issued = await generator.issue_token(consent.consent_id, support.TOKEN_USES)

        suspended = await uploader.suspend(consent.consent_id)
        assert suspended.suspended_tokens == [issued.jti]
        assert (await generator.verify_token(issued.token)).reasons == ["suspended"]
        resumed = await uploader.resume(consent.consent_id, reason="settled")
        assert resumed.restored_tokens == [issued.jti]
        assert (await generator.verify_token(issued.token)).valid
