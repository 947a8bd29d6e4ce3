"""Every operation of the API as a ``Call``: its request, whether it may be repeated, and the
reading of its answer. Both clients expose exactly these, with the same parameters.

Which calls are repeatable follows from what the service does with a repeat:

- reads (GET), and POSTs that only check or look up: token verify, provenance verify and
  lookup, hash lookup;
- the prompt check and the gate: each decision is stored under its ``generation_id``, and the
  same request again answers the stored decision (``Idempotent-Replayed``);
- a consent submission sent with an ``Idempotency-Key`` (this client always sends one): the
  same key and body answer the same record;
- a grant: granting twice is a no-op.

Issuing a token, enrolling a signer, signing an output, appealing, withdrawing, suspending,
resuming and erasing are never sent twice: a repeat would make a second token, or be refused
as a conflict after the first one succeeded unseen.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence  # noqa: TC003 - msgspec reads them at runtime
from datetime import datetime  # noqa: TC003 - msgspec reads the annotations at runtime
from typing import Any, Literal

import httpx
import msgspec

from registry_client._core import Call, decoder, excerpt, path
from registry_client.errors import UnexpectedResponse
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

REPLAYED_HEADER = "idempotent-replayed"
ASSERTION_HEADER = "provenance-assertion"
OUTPUT_ID_HEADER = "provenance-output-id"
IDEMPOTENCY_HEADER = "Idempotency-Key"

_encoder = msgspec.json.Encoder()


# Request bodies, as the handlers read them (unknown members are refused there).


class _Body(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    pass


class _EnrolSigner(_Body, frozen=True):
    jwk: Mapping[str, Any]
    subject_ref: str
    role: str


class _SubmitConsent(_Body, frozen=True):
    form: str


class _Grant(_Body, frozen=True):
    client_id: str


class _IssueToken(_Body, frozen=True):
    consent_id: str
    uses: Sequence[str]
    asset_ids: Sequence[str] | None = None
    ttl_seconds: int | None = None


class _VerifyToken(_Body, frozen=True):
    token: str
    use: str | None = None
    asset_sha256: str | None = None
    audience: str | None = None


class _PromptCheck(_Body, frozen=True):
    generation_id: str
    prompt: str
    source_assets: Sequence[SourceAsset] = ()
    intended_uses: Sequence[str] = ()
    user_id: str | None = None
    model: str | None = None
    prompt_scores: Mapping[str, float] | None = None


class _Metadata(_Body, frozen=True):
    model: str | None = None
    timestamp: datetime | None = None
    generator_client_id: str | None = None


class _GateCheck(_Body, frozen=True):
    generation_id: str
    prompt: str = ""
    source_assets: Sequence[SourceAsset] = ()
    user_id: str | None = None
    metadata: _Metadata | None = None
    scores: Mapping[str, float] | None = None
    prompt_scores: Mapping[str, float] | None = None
    image_url: str | None = None


class _SignMetadata(_Body, frozen=True):
    generation_id: str
    model: str
    # Required by the service even when empty, so never omitted (no default).
    consent_tokens: Sequence[str]
    decision_id: str | None = None
    edited_reference: bool = False


class _HashLookupOne(_Body, frozen=True):
    signal: str
    hash: str
    max_distance: int | None = None


class _HashLookupBatch(_Body, frozen=True):
    queries: Sequence[HashQuery]


class _BatchAnswer(msgspec.Struct, frozen=True):
    results: list[HashLookup]


class _ConsentList(msgspec.Struct, frozen=True):
    consents: list[Consent]


class _Appeal(_Body, frozen=True):
    decision_id: str
    statement: str


class _Report(_Body, frozen=True):
    category: str


class _Withdraw(_Body, frozen=True):
    withdrawal: str | None = None
    reason: str | None = None


class _Suspension(_Body, frozen=True):
    reason: str | None = None


def _json(body: msgspec.Struct) -> bytes:
    return _encoder.encode(body)


# Images.

_SIGNATURES: tuple[tuple[bytes, int, str, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg", "jpg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png", "png"),
    (b"WEBP", 8, "image/webp", "webp"),
)


def image_part(data: bytes) -> tuple[str, bytes, str]:
    """A file part for ``data``: a name and content type that agree with its bytes (the
    service refuses a part whose declared type contradicts them)."""
    for magic, offset, media_type, extension in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic and (offset == 0 or data[:4] == b"RIFF"):
            return f"image.{extension}", data, media_type
    # Not JPEG, PNG or WebP: the service answers 415 with its own words.
    return "image", data, "application/octet-stream"


def _tokens(assets: Sequence[SourceAsset]) -> tuple[str, ...]:
    return tuple(asset.consent_token for asset in assets if asset.consent_token)


# Parsers that read more than the JSON body.


def _grant(response: httpx.Response) -> Grant:
    granted = decoder(Grant)(response)
    return msgspec.structs.replace(granted, created=response.status_code == 201)  # noqa: PLR2004


def _decision(response: httpx.Response) -> GateDecision:
    decision = decoder(GateDecision)(response)
    replayed = response.headers.get(REPLAYED_HEADER, "").lower() == "true"
    return msgspec.structs.replace(decision, replayed=replayed)


def _signed(response: httpx.Response) -> SignedOutput:
    output_id = response.headers.get(OUTPUT_ID_HEADER)
    assertion = response.headers.get(ASSERTION_HEADER)
    media_type = response.headers.get("content-type", "").split(";", 1)[0].strip()
    if not output_id or not assertion or not media_type.startswith("image/"):
        raise UnexpectedResponse(
            f"HTTP {response.status_code}: a signing answer without the signed image and its "
            "Provenance-Output-Id and Provenance-Assertion headers",
            status=response.status_code,
            excerpt=excerpt(response.content),
        )
    return SignedOutput(
        output_id=output_id, media_type=media_type, data=response.content, assertion=assertion
    )


def _batch(response: httpx.Response) -> list[HashLookup]:
    return decoder(_BatchAnswer)(response).results


def _consents(response: httpx.Response) -> list[Consent]:
    return decoder(_ConsentList)(response).consents


def _compact_jws(response: httpx.Response) -> str:
    text = response.content.decode("ascii", "replace").strip()
    if text.count(".") != 2 or any(c.isspace() for c in text):  # noqa: PLR2004
        raise UnexpectedResponse(
            f"HTTP {response.status_code}: the answer is not a compact JWS",
            status=response.status_code,
            excerpt=excerpt(response.content),
        )
    return text


# The operations.


def get_template(template_id: str) -> Call[Template]:
    return Call(
        "GET", path("/v1/consent-templates/{}", template_id), decoder(Template), repeatable=True
    )


def enrol_signer(
    jwk: Mapping[str, Any], *, subject_ref: str, role: SignerRole = "subject"
) -> Call[SignerEnrolled]:
    body = _EnrolSigner(jwk=jwk, subject_ref=subject_ref, role=role)
    return Call("POST", "/v1/signers", decoder(SignerEnrolled), content=_json(body))


def submit_consent(
    form: str, *, photos: Sequence[bytes] = (), idempotency_key: str | None = None
) -> Call[ConsentSubmitted]:
    # A random key by default: it makes the submission safe to retry, and says nothing about
    # the person (the service keeps it with the record).
    headers = {IDEMPOTENCY_HEADER: idempotency_key or str(uuid.uuid4())}
    parse = decoder(ConsentSubmitted)
    if not photos:
        body = _json(_SubmitConsent(form=form))
        return Call("POST", "/v1/consents", parse, content=body, headers=headers, repeatable=True)
    files: list[tuple[str, tuple[str | None, bytes, str]]] = [
        ("form", (None, form.encode("ascii"), "text/plain"))
    ]
    files += [("assets", image_part(photo)) for photo in photos]
    return Call("POST", "/v1/consents", parse, files=files, headers=headers, repeatable=True)


def get_consent(consent_id: str) -> Call[Consent]:
    return Call("GET", path("/v1/consents/{}", consent_id), decoder(Consent), repeatable=True)


def find_consents(subject_ref: str) -> Call[list[Consent]]:
    query = str(httpx.QueryParams({"subject_ref": subject_ref}))
    return Call("GET", f"/v1/consents?{query}", _consents, repeatable=True)


def grant(consent_id: str, client_id: str) -> Call[Grant]:
    return Call(
        "POST",
        path("/v1/consents/{}/grants", consent_id),
        _grant,
        content=_json(_Grant(client_id=client_id)),
        repeatable=True,
    )


def issue_token(
    consent_id: str,
    uses: Sequence[str],
    *,
    asset_ids: Sequence[str] | None = None,
    ttl_seconds: int | None = None,
) -> Call[IssuedToken]:
    body = _IssueToken(
        consent_id=consent_id, uses=uses, asset_ids=asset_ids, ttl_seconds=ttl_seconds
    )
    return Call("POST", "/v1/tokens", decoder(IssuedToken), content=_json(body))


def verify_token(
    token: str,
    *,
    use: str | None = None,
    asset_sha256: str | None = None,
    audience: str | None = None,
) -> Call[TokenCheck]:
    body = _VerifyToken(token=token, use=use, asset_sha256=asset_sha256, audience=audience)
    return Call(
        "POST",
        "/v1/tokens/verify",
        decoder(TokenCheck),
        content=_json(body),
        repeatable=True,
        tokens=(token,),
    )


def prompt_check(
    generation_id: str,
    prompt: str,
    *,
    source_assets: Sequence[SourceAsset] = (),
    intended_uses: Sequence[str] = (),
    user_id: str | None = None,
    model: str | None = None,
    prompt_scores: Mapping[str, float] | None = None,
) -> Call[GateDecision]:
    body = _PromptCheck(
        generation_id=generation_id,
        prompt=prompt,
        source_assets=source_assets,
        intended_uses=intended_uses,
        user_id=user_id,
        model=model,
        prompt_scores=prompt_scores,
    )
    return Call(
        "POST",
        "/v1/moderation/prompt-check",
        _decision,
        content=_json(body),
        repeatable=True,
        tokens=_tokens(source_assets),
    )


def gate_check(
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
) -> Call[GateDecision]:
    if (image is None) == (image_url is None):
        raise ValueError("send the image's bytes (image) or its address (image_url), not both")
    metadata = _Metadata(model=model, timestamp=timestamp, generator_client_id=generator_client_id)
    body = _GateCheck(
        generation_id=generation_id,
        prompt=prompt,
        source_assets=source_assets,
        user_id=user_id,
        metadata=metadata if metadata != _Metadata() else None,
        scores=scores,
        prompt_scores=prompt_scores,
        image_url=image_url,
    )
    # Every decision is stored under its generation_id and a repeat answers the stored one,
    # so the gate is safe to retry whenever there is an id to find it by.
    repeatable = bool(generation_id)
    tokens = _tokens(source_assets)
    if image is None:
        return Call(
            "POST",
            "/v1/moderation/check",
            _decision,
            content=_json(body),
            repeatable=repeatable,
            tokens=tokens,
        )
    files: list[tuple[str, tuple[str | None, bytes, str]]] = [
        ("request", (None, _json(body), "application/json")),
        ("image", image_part(image)),
    ]
    return Call(
        "POST",
        "/v1/moderation/check",
        _decision,
        files=files,
        repeatable=repeatable,
        tokens=tokens,
    )


def sign_output(
    image: bytes,
    *,
    generation_id: str,
    model: str,
    consent_tokens: Sequence[str] = (),
    decision_id: str | None = None,
    edited_reference: bool = False,
) -> Call[SignedOutput]:
    metadata = _SignMetadata(
        generation_id=generation_id,
        model=model,
        consent_tokens=consent_tokens,
        decision_id=decision_id,
        edited_reference=edited_reference,
    )
    files: list[tuple[str, tuple[str | None, bytes, str]]] = [
        ("file", image_part(image)),
        ("metadata", (None, _json(metadata), "application/json")),
    ]
    return Call(
        "POST",
        "/v1/provenance/sign",
        _signed,
        files=files,
        headers={"Accept": "image/*, application/problem+json"},
        tokens=tuple(consent_tokens),
    )


def verify_provenance(image: bytes) -> Call[ProvenanceReport]:
    return Call(
        "POST",
        "/v1/provenance/verify",
        decoder(ProvenanceReport),
        files=[("file", image_part(image))],
        repeatable=True,
    )


def lookup_provenance(image: bytes) -> Call[ProvenanceLookup]:
    return Call(
        "POST",
        "/v1/provenance/lookup",
        decoder(ProvenanceLookup),
        files=[("file", image_part(image))],
        repeatable=True,
    )


def lookup_hash(
    signal: Literal["pdq", "phash"],
    hash: str,  # noqa: A002 - the member's name in the API
    *,
    max_distance: int | None = None,
) -> Call[HashLookup]:
    body = _HashLookupOne(signal=signal, hash=hash, max_distance=max_distance)
    return Call(
        "POST", "/v1/hashes/lookup", decoder(HashLookup), content=_json(body), repeatable=True
    )


def lookup_hashes(queries: Sequence[HashQuery]) -> Call[list[HashLookup]]:
    body = _HashLookupBatch(queries=queries)
    return Call("POST", "/v1/hashes/lookup", _batch, content=_json(body), repeatable=True)


def appeal(decision_id: str, statement: str) -> Call[Appeal]:
    body = _Appeal(decision_id=decision_id, statement=statement)
    return Call("POST", "/v1/appeals", decoder(Appeal), content=_json(body))


def report(decision_id: str, category: ReportCategory) -> Call[Report]:
    body = _Report(category=category)
    return Call(
        "POST",
        path("/v1/moderation/decisions/{}/reports", decision_id),
        decoder(Report),
        content=_json(body),
    )


def withdraw(
    consent_id: str, *, withdrawal: str | None = None, reason: str | None = None
) -> Call[Withdrawal]:
    if (withdrawal is None) == (reason is None):
        raise ValueError("send the signed withdrawal, or (as an admin) a reason, not both")
    body = _Withdraw(withdrawal=withdrawal, reason=reason)
    return Call(
        "POST",
        path("/v1/consents/{}/withdraw", consent_id),
        decoder(Withdrawal),
        content=_json(body),
    )


def suspend(consent_id: str, reason: str | None = None) -> Call[Suspension]:
    return Call(
        "POST",
        path("/v1/consents/{}/suspend", consent_id),
        decoder(Suspension),
        content=_json(_Suspension(reason=reason)),
    )


def resume(consent_id: str, reason: str | None = None) -> Call[Resumption]:
    return Call(
        "POST",
        path("/v1/consents/{}/resume", consent_id),
        decoder(Resumption),
        content=_json(_Suspension(reason=reason)),
    )


def erase(consent_id: str) -> Call[Erasure]:
    return Call("POST", path("/v1/consents/{}/erase", consent_id), decoder(Erasure))


def fetch_status_list(list_id: str) -> Call[str]:
    return Call(
        "GET",
        path("/v1/status-lists/{}", list_id),
        _compact_jws,
        headers={"Accept": "application/statuslist+jwt, application/problem+json"},
        repeatable=True,
    )


def fetch_jwks() -> Call[JWKS]:
    return Call("GET", "/.well-known/jwks.json", decoder(JWKS), repeatable=True)
