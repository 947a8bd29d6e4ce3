"""``RegistryClient`` (blocking, ``httpx.Client``) and ``AsyncRegistryClient`` (``asyncio``,
``httpx.AsyncClient``): the same operations with the same parameters.

Each method builds its ``Call`` (``registry_client._calls``) and runs it: the shared ``Core``
checks the consent tokens it carries, builds the request and reads every attempt's outcome;
the client only sends and sleeps. ``tests/client/test_parity.py`` holds the two classes and
the calls to the same signatures.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime  # noqa: TC003 - part of the public signatures
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

import httpx

from registry_client import _calls
from registry_client._core import Call, Core, Done, RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import TracebackType

    from registry_client.models import (
        JWKS,
        Appeal,
        Consent,
        ConsentSubmitted,
        Erasure,
        GateDecision,
        Grant,
        HashLookup,
        HashQuery,
        IssuedToken,
        ProvenanceLookup,
        ProvenanceReport,
        Report,
        ReportCategory,
        Resumption,
        SignedOutput,
        SignerEnrolled,
        SignerRole,
        SourceAsset,
        Suspension,
        Template,
        TokenCheck,
        Withdrawal,
    )

__all__ = ["DEFAULT_TIMEOUT", "AsyncRegistryClient", "RegistryClient"]

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
"""Seconds for each of connecting, sending and reading. Longer than the service's own bounds
on one image (``REGISTRY_GATE_*_TIMEOUT`` 15 s, ``REGISTRY_IMAGE_WORK_TIMEOUT`` 20 s), so a
busy gate's fail-closed answer arrives rather than a client-side timeout."""


def _user_agent() -> str:
    try:
        version = metadata.version("consent-registry")
    except metadata.PackageNotFoundError:
        version = "0"
    return f"registry-client/{version} httpx/{httpx.__version__}"


def _policy(retries: RetryPolicy | int) -> RetryPolicy:
    return retries if isinstance(retries, RetryPolicy) else RetryPolicy(attempts=retries)


class RegistryClient:
    """The registry's API over a blocking ``httpx.Client``.

    ``base_url`` is the service's public address (its ``REGISTRY_ISSUER``); ``api_key`` the
    caller's key (``None`` for the public operations only). ``retries`` bounds the attempts
    of a call that is safe to repeat (an ``int`` is the number of attempts). Pass
    ``transport`` (e.g. ``httpx.MockTransport`` or a proxy's) or a whole ``http_client`` of
    your own; a client you pass is not closed by ``close()``.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: RetryPolicy | int = RetryPolicy(),  # noqa: B008 - frozen, shared safely
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._core = Core(base_url, api_key, _policy(retries), _user_agent())
        self._owned = http_client is None
        self._http = (
            http_client
            if http_client is not None
            else httpx.Client(timeout=timeout, transport=transport)
        )

    def __repr__(self) -> str:
        return f"RegistryClient({self._core.base_url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def _run(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            self._core.check_tokens(call)
            request = self._core.build(self._http, call)
            try:
                response = self._http.send(request)
            except httpx.HTTPError as exc:
                wait = self._core.on_failure(call, exc, attempt)
            else:
                step = self._core.on_response(call, response, attempt)
                if isinstance(step, Done):
                    return step.value
                wait = step
            time.sleep(wait.seconds)

    # Uploaders.

    def get_template(self, template_id: str) -> Template:
        """A consent text with its SHA-256 (what a form names) and the uses it offers."""
        return self._run(_calls.get_template(template_id))

    def enrol_signer(
        self, jwk: Mapping[str, Any], *, subject_ref: str, role: SignerRole = "subject"
    ) -> SignerEnrolled:
        """Enrol a person's public key (``FormSigner.public_jwk()``); its forms then name it
        by ``kid`` and get ``enrolled`` assurance. Uploaders."""
        return self._run(_calls.enrol_signer(jwk, subject_ref=subject_ref, role=role))

    def submit_consent(
        self, form: str, *, photos: Sequence[bytes] = (), idempotency_key: str | None = None
    ) -> ConsentSubmitted:
        """Submit a signed consent form, with the photos it lists (multipart) or, without
        ``photos``, only their hashes (JSON: the photos stay on the device). Sent with an
        ``Idempotency-Key`` (a random one unless given), so it is retried safely. Uploaders."""
        return self._run(
            _calls.submit_consent(form, photos=photos, idempotency_key=idempotency_key)
        )

    def get_consent(self, consent_id: str) -> Consent:
        """A consent record of the caller's tenant. Uploaders and admins."""
        return self._run(_calls.get_consent(consent_id))

    def find_consents(self, subject_ref: str) -> list[Consent]:
        """The caller's tenant's consent records for a subject reference."""
        return self._run(_calls.find_consents(subject_ref))

    def grant(self, consent_id: str, client_id: str) -> Grant:
        """Let the generator client ``client_id`` obtain tokens for the consent. Uploaders."""
        return self._run(_calls.grant(consent_id, client_id))

    def withdraw(
        self, consent_id: str, *, withdrawal: str | None = None, reason: str | None = None
    ) -> Withdrawal:
        """Withdraw with the person's signed withdrawal (``FormSigner.sign_withdrawal``) or,
        as an admin, a reason. Its tokens are revoked at once; the answer lists what was
        made with them."""
        return self._run(_calls.withdraw(consent_id, withdrawal=withdrawal, reason=reason))

    def suspend(self, consent_id: str, reason: str | None = None) -> Suspension:
        """Suspend the consent (a reversible stop, e.g. during a dispute): its tokens fail with
        ``suspended`` and none is issued until ``resume``. The reason is kept as its SHA-256."""
        return self._run(_calls.suspend(consent_id, reason))

    def resume(self, consent_id: str, reason: str | None = None) -> Resumption:
        """End the consent's suspension: its suspended tokens are valid again."""
        return self._run(_calls.resume(consent_id, reason))

    def erase(self, consent_id: str) -> Erasure:
        """Withdraw if needed, then destroy the record's personal data."""
        return self._run(_calls.erase(consent_id))

    # Generator clients.

    def issue_token(
        self,
        consent_id: str,
        uses: Sequence[str],
        *,
        asset_ids: Sequence[str] | None = None,
        ttl_seconds: int | None = None,
    ) -> IssuedToken:
        """A consent token for ``uses`` of a consent granted to the caller. Generators."""
        return self._run(
            _calls.issue_token(consent_id, uses, asset_ids=asset_ids, ttl_seconds=ttl_seconds)
        )

    def verify_token(
        self,
        token: str,
        *,
        use: str | None = None,
        asset_sha256: str | None = None,
        audience: str | None = None,
    ) -> TokenCheck:
        """The service's online check of a token (signature, claims, binding, use, live
        revocation). ``audience``: publishers name the generator the token must be for.
        Raises ``TokenExpired`` without asking when the token is past its ``exp``."""
        return self._run(
            _calls.verify_token(token, use=use, asset_sha256=asset_sha256, audience=audience)
        )

    def prompt_check(
        self,
        generation_id: str,
        prompt: str,
        *,
        source_assets: Sequence[SourceAsset] = (),
        intended_uses: Sequence[str] = (),
        user_id: str | None = None,
        model: str | None = None,
        prompt_scores: Mapping[str, float] | None = None,
    ) -> GateDecision:
        """Before generating: the prompt's intent and every source's consent for
        ``intended_uses``, with ``prompt_scores`` from your own prompt classifier
        (``prompt_intent``, 0..1). Stored per ``generation_id``. Generators."""
        return self._run(
            _calls.prompt_check(
                generation_id,
                prompt,
                source_assets=source_assets,
                intended_uses=intended_uses,
                user_id=user_id,
                model=model,
                prompt_scores=prompt_scores,
            )
        )

    def sign_output(
        self,
        image: bytes,
        *,
        generation_id: str,
        model: str,
        consent_tokens: Sequence[str] = (),
        decision_id: str | None = None,
        edited_reference: bool = False,
    ) -> SignedOutput:
        """Embed a signed C2PA manifest in a generated image and record it; the answer holds
        the signed bytes, the output id and the detached assertion. Never retried (the same
        ``generation_id`` signed twice is 409). Generators."""
        return self._run(
            _calls.sign_output(
                image,
                generation_id=generation_id,
                model=model,
                consent_tokens=consent_tokens,
                decision_id=decision_id,
                edited_reference=edited_reference,
            )
        )

    # Publishers.

    def gate_check(
        self,
        generation_id: str,
        *,
        image: bytes | None = None,
        image_url: str | None = None,
        prompt: str = "",
        source_assets: Sequence[SourceAsset] = (),
        scores: Mapping[str, float] | None = None,
        generator_client_id: str | None = None,
        model: str | None = None,
        timestamp: datetime | None = None,
        user_id: str | None = None,
        prompt_scores: Mapping[str, float] | None = None,
    ) -> GateDecision:
        """The publish gate: ``allowed``, ``review`` or ``blocked`` with reasons, for the
        image's bytes or its ``image_url``. ``generator_client_id`` is the generator that made
        it (every token's audience); ``scores`` your classifiers' (``sexual_content``,
        ``minor_presence``, and ``nonconsensual_transformation`` with a real person's photo,
        0..1); ``prompt_scores`` your prompt classifier's (``prompt_intent``). Publishers."""
        return self._run(
            _calls.gate_check(
                generation_id,
                image=image,
                image_url=image_url,
                prompt=prompt,
                source_assets=source_assets,
                scores=scores,
                generator_client_id=generator_client_id,
                model=model,
                timestamp=timestamp,
                user_id=user_id,
                prompt_scores=prompt_scores,
            )
        )

    def appeal(self, decision_id: str, statement: str) -> Appeal:
        """Appeal a blocked decision on behalf of the publisher's user. Publishers."""
        return self._run(_calls.appeal(decision_id, statement))

    def report(self, decision_id: str, category: ReportCategory) -> Report:
        """Report an allowed output after publication (its users flagged it); while the
        decision's report is open, returns that one (``created`` False). Publishers."""
        return self._run(_calls.report(decision_id, category))

    def lookup_hash(
        self,
        signal: Literal["pdq", "phash"],
        hash: str,  # noqa: A002 - the member's name in the API
        *,
        max_distance: int | None = None,
    ) -> HashLookup:
        """Look one PDQ or pHash hash up in the protected-hash lists. Publishers, generators."""
        return self._run(_calls.lookup_hash(signal, hash, max_distance=max_distance))

    def lookup_hashes(self, queries: Sequence[HashQuery]) -> list[HashLookup]:
        """Look up to 1,000 hashes up at once; one result a query, in order."""
        return self._run(_calls.lookup_hashes(queries))

    # Anyone.

    def verify_provenance(self, image: bytes) -> ProvenanceReport:
        """An image's C2PA verdict, and the registry's record when it is one of its outputs."""
        return self._run(_calls.verify_provenance(image))

    def lookup_provenance(self, image: bytes) -> ProvenanceLookup:
        """Signed outputs that look like this image (a copy whose manifest was stripped)."""
        return self._run(_calls.lookup_provenance(image))

    def fetch_status_list(self, list_id: str) -> str:
        """A token status list: the compact JWT (``typ: statuslist+jwt``) as served."""
        return self._run(_calls.fetch_status_list(list_id))

    def fetch_jwks(self) -> JWKS:
        """The registry's public keys, which verify tokens, receipts and status lists."""
        return self._run(_calls.fetch_jwks())


class AsyncRegistryClient:
    """``RegistryClient``'s operations over an ``httpx.AsyncClient``; every method is a
    coroutine with the same parameters and answer."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: RetryPolicy | int = RetryPolicy(),  # noqa: B008 - frozen, shared safely
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._core = Core(base_url, api_key, _policy(retries), _user_agent())
        self._owned = http_client is None
        self._http = (
            http_client
            if http_client is not None
            else httpx.AsyncClient(timeout=timeout, transport=transport)
        )

    def __repr__(self) -> str:
        return f"AsyncRegistryClient({self._core.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    async def _run(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            self._core.check_tokens(call)
            request = self._core.build(self._http, call)
            try:
                response = await self._http.send(request)
            except httpx.HTTPError as exc:
                wait = self._core.on_failure(call, exc, attempt)
            else:
                step = self._core.on_response(call, response, attempt)
                if isinstance(step, Done):
                    return step.value
                wait = step
            await asyncio.sleep(wait.seconds)

    # Uploaders.

    async def get_template(self, template_id: str) -> Template:
        """See ``RegistryClient.get_template``."""
        return await self._run(_calls.get_template(template_id))

    async def enrol_signer(
        self, jwk: Mapping[str, Any], *, subject_ref: str, role: SignerRole = "subject"
    ) -> SignerEnrolled:
        """See ``RegistryClient.enrol_signer``."""
        return await self._run(_calls.enrol_signer(jwk, subject_ref=subject_ref, role=role))

    async def submit_consent(
        self, form: str, *, photos: Sequence[bytes] = (), idempotency_key: str | None = None
    ) -> ConsentSubmitted:
        """See ``RegistryClient.submit_consent``."""
        return await self._run(
            _calls.submit_consent(form, photos=photos, idempotency_key=idempotency_key)
        )

    async def get_consent(self, consent_id: str) -> Consent:
        """See ``RegistryClient.get_consent``."""
        return await self._run(_calls.get_consent(consent_id))

    async def find_consents(self, subject_ref: str) -> list[Consent]:
        """See ``RegistryClient.find_consents``."""
        return await self._run(_calls.find_consents(subject_ref))

    async def grant(self, consent_id: str, client_id: str) -> Grant:
        """See ``RegistryClient.grant``."""
        return await self._run(_calls.grant(consent_id, client_id))

    async def withdraw(
        self, consent_id: str, *, withdrawal: str | None = None, reason: str | None = None
    ) -> Withdrawal:
        """See ``RegistryClient.withdraw``."""
        return await self._run(_calls.withdraw(consent_id, withdrawal=withdrawal, reason=reason))

    async def suspend(self, consent_id: str, reason: str | None = None) -> Suspension:
        """See ``RegistryClient.suspend``."""
        return await self._run(_calls.suspend(consent_id, reason))

    async def resume(self, consent_id: str, reason: str | None = None) -> Resumption:
        """See ``RegistryClient.resume``."""
        return await self._run(_calls.resume(consent_id, reason))

    async def erase(self, consent_id: str) -> Erasure:
        """See ``RegistryClient.erase``."""
        return await self._run(_calls.erase(consent_id))

    # Generator clients.

    async def issue_token(
        self,
        consent_id: str,
        uses: Sequence[str],
        *,
        asset_ids: Sequence[str] | None = None,
        ttl_seconds: int | None = None,
    ) -> IssuedToken:
        """See ``RegistryClient.issue_token``."""
        return await self._run(
            _calls.issue_token(consent_id, uses, asset_ids=asset_ids, ttl_seconds=ttl_seconds)
        )

    async def verify_token(
        self,
        token: str,
        *,
        use: str | None = None,
        asset_sha256: str | None = None,
        audience: str | None = None,
    ) -> TokenCheck:
        """See ``RegistryClient.verify_token``."""
        return await self._run(
            _calls.verify_token(token, use=use, asset_sha256=asset_sha256, audience=audience)
        )

    async def prompt_check(
        self,
        generation_id: str,
        prompt: str,
        *,
        source_assets: Sequence[SourceAsset] = (),
        intended_uses: Sequence[str] = (),
        user_id: str | None = None,
        model: str | None = None,
        prompt_scores: Mapping[str, float] | None = None,
    ) -> GateDecision:
        """See ``RegistryClient.prompt_check``."""
        return await self._run(
            _calls.prompt_check(
                generation_id,
                prompt,
                source_assets=source_assets,
                intended_uses=intended_uses,
                user_id=user_id,
                model=model,
                prompt_scores=prompt_scores,
            )
        )

    async def sign_output(
        self,
        image: bytes,
        *,
        generation_id: str,
        model: str,
        consent_tokens: Sequence[str] = (),
        decision_id: str | None = None,
        edited_reference: bool = False,
    ) -> SignedOutput:
        """See ``RegistryClient.sign_output``."""
        return await self._run(
            _calls.sign_output(
                image,
                generation_id=generation_id,
                model=model,
                consent_tokens=consent_tokens,
                decision_id=decision_id,
                edited_reference=edited_reference,
            )
        )

    # Publishers.

    async def gate_check(
        self,
        generation_id: str,
        *,
        image: bytes | None = None,
        image_url: str | None = None,
        prompt: str = "",
        source_assets: Sequence[SourceAsset] = (),
        scores: Mapping[str, float] | None = None,
        generator_client_id: str | None = None,
        model: str | None = None,
        timestamp: datetime | None = None,
        user_id: str | None = None,
        prompt_scores: Mapping[str, float] | None = None,
    ) -> GateDecision:
        """See ``RegistryClient.gate_check``."""
        return await self._run(
            _calls.gate_check(
                generation_id,
                image=image,
                image_url=image_url,
                prompt=prompt,
                source_assets=source_assets,
                scores=scores,
                generator_client_id=generator_client_id,
                model=model,
                timestamp=timestamp,
                user_id=user_id,
                prompt_scores=prompt_scores,
            )
        )

    async def appeal(self, decision_id: str, statement: str) -> Appeal:
        """See ``RegistryClient.appeal``."""
        return await self._run(_calls.appeal(decision_id, statement))

    async def report(self, decision_id: str, category: ReportCategory) -> Report:
        """See ``RegistryClient.report``."""
        return await self._run(_calls.report(decision_id, category))

    async def lookup_hash(
        self,
        signal: Literal["pdq", "phash"],
        hash: str,  # noqa: A002 - the member's name in the API
        *,
        max_distance: int | None = None,
    ) -> HashLookup:
        """See ``RegistryClient.lookup_hash``."""
        return await self._run(_calls.lookup_hash(signal, hash, max_distance=max_distance))

    async def lookup_hashes(self, queries: Sequence[HashQuery]) -> list[HashLookup]:
        """See ``RegistryClient.lookup_hashes``."""
        return await self._run(_calls.lookup_hashes(queries))

    # Anyone.

    async def verify_provenance(self, image: bytes) -> ProvenanceReport:
        """See ``RegistryClient.verify_provenance``."""
        return await self._run(_calls.verify_provenance(image))

    async def lookup_provenance(self, image: bytes) -> ProvenanceLookup:
        """See ``RegistryClient.lookup_provenance``."""
        return await self._run(_calls.lookup_provenance(image))

    async def fetch_status_list(self, list_id: str) -> str:
        """See ``RegistryClient.fetch_status_list``."""
        return await self._run(_calls.fetch_status_list(list_id))

    async def fetch_jwks(self) -> JWKS:
        """See ``RegistryClient.fetch_jwks``."""
        return await self._run(_calls.fetch_jwks())
