"""Sign a generated image: an embedded C2PA manifest saying how it was made and under what.

The manifest carries ``c2pa.actions`` (``c2pa.created`` with the IPTC digital source type and
the generator model as software agent), the reference assets as ingredients, the CAWG
training-and-data-mining assertion (what the consents behind the output say about AI
training), and two assertions of ours: the consent tokens used (jti and status-list entry, no
personal data) and the gate decision.

Each reference photo is an ingredient assertion (``c2pa.ingredient.v3``, relationship
``inputTo``) that names it by its consent, not by its content: ``instance_id``
``consent:<consent id>/<asset id>`` and ``informational_URI`` the status list of the token
that consented to it. It carries no hash, no thumbnail and no data of the photo. A manifest
is public and can never be erased, and a photo's SHA-256 outlives the consent's erasure in it
(anyone holding a copy of the photo could match it, or look it up). C2PA asks of a v3
ingredient only its ``relationship`` (title, format, instanceID, data and the hashed link to
its own manifest are optional; a hash binding belongs to an ingredient that has a manifest
of its own, which a consented photo does not), so an ingredient without a hash is one every
C2PA reader reads; we keep ingredients rather than a custom assertion so that the
``c2pa.created`` action still points at its inputs (``ingredientIds``) the standard way.
Outputs signed before this named each photo ``sha256:<hex>`` in ``instance_id``; readers show
either form as it is.

With a ``TimestampAuthority`` the claim signature carries an RFC 3161 timestamp from it, so
the signature can be checked against the time it was made, after the signing certificate
expires. The signed output is read back with the TSA's anchors before it is returned: a
timestamp that is missing, does not match or is not trusted raises TimestampUnavailable, so
stamping never quietly yields an unstamped or badly stamped output.
"""

from __future__ import annotations

import functools
import importlib.metadata
from typing import TYPE_CHECKING, Any

import msgspec
from cryptography import x509

from verifier import _c2pa
from verifier.errors import (
    GenerationFactsInvalid,
    ImageFormatNotAllowed,
    ImageTypeMismatch,
    TimestampUnavailable,
    TrustSettingsInvalid,
)
from verifier.imaging import sniff_media_type
from verifier.report import (
    CONSENT_ASSERTION_LABEL,
    DECISION_ASSERTION_LABEL,
    TRAINING_MINING_LABEL,
    ConsentRef,
    DecisionRef,
    Timestamp,
    consent_assertion_data,
    decision_assertion_data,
    timestamp_from_store,
    training_mining_assertion_data,
)
from verifier.watermark import soft_binding_assertion

if TYPE_CHECKING:
    from keys.c2pa_identity import C2paIdentity

__all__ = [
    "CLAIM_GENERATOR",
    "COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA",
    "TRAINED_ALGORITHMIC_MEDIA",
    "TRAINING_USE",
    "GenerationFacts",
    "IngredientRef",
    "TimestampAuthority",
    "sign",
]

_IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED_ALGORITHMIC_MEDIA = _IPTC + "trainedAlgorithmicMedia"
COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA = _IPTC + "compositeWithTrainedAlgorithmicMedia"
CLAIM_GENERATOR = "consent-registry"
# The consent use (verifier.uses) that lets the output be used to train AI models.
TRAINING_USE = "ai.training"
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
_MAX_FIELD = 200
_MAX_URI = 2048
_MAX_REFS = 100


class IngredientRef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A reference asset, named by the consent that covers it: the consent's id, the asset's
    id in it and the status list URI of the token it was used under (never by its hash)."""

    title: str
    consent_id: str
    asset_id: str
    status_list_uri: str

    @property
    def instance_id(self) -> str:
        return f"consent:{self.consent_id}/{self.asset_id}"


class TimestampAuthority(msgspec.Struct, frozen=True, kw_only=True):
    """An RFC 3161 timestamp authority: where to ask, and the anchors its certificate must
    chain to (a PEM bundle). The caller has checked that the URL may be reached."""

    url: str
    anchors_pem: str

    def __post_init__(self) -> None:
        if not self.url.startswith(("https://", "http://")):
            raise TrustSettingsInvalid("the timestamp authority URL must be http(s)")
        try:
            anchors = x509.load_pem_x509_certificates(self.anchors_pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise TrustSettingsInvalid("the TSA trust anchors are not PEM certificates") from None
        reason = _c2pa.check_anchors(self.anchors_pem) if anchors else "no certificate"
        if reason is not None:
            raise TrustSettingsInvalid(f"the TSA trust anchors cannot be used: {reason}")


class GenerationFacts(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the manifest states about one generated output.

    ``edited_reference``: a reference photo was edited (composite) rather than the image
    made from scratch; this picks the digital source type.
    ``training_granted``: every consent behind the output grants ``ai.training`` (and there
    is at least one); the training-and-data-mining assertion says AI training is
    ``constrained`` (to those consents staying valid) rather than ``notAllowed``.
    """

    generation_id: str
    model: str
    edited_reference: bool = False
    ingredients: tuple[IngredientRef, ...] = ()
    consent_refs: tuple[ConsentRef, ...] = ()
    decision: DecisionRef | None = None
    training_granted: bool = False

    @property
    def digital_source_type(self) -> str:
        if self.edited_reference:
            return COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
        return TRAINED_ALGORITHMIC_MEDIA


def sign(
    data: bytes,
    media_type: str,
    facts: GenerationFacts,
    identity: C2paIdentity,
    *,
    thumbnail: bool = False,
    timestamp: TimestampAuthority | None = None,
    watermark_key: str | None = None,
) -> bytes:
    """``data`` with an embedded, signed C2PA manifest stating ``facts``.

    ``watermark_key``: the pixels of ``data`` carry this key in our invisible watermark
    (``verifier.watermark``, embedded by the caller before signing, so that the manifest's
    hard binding covers the marked bytes); the manifest declares it as a ``c2pa.soft-binding``
    assertion.

    The bytes must be the declared ``media_type`` (JPEG, PNG or WebP). With ``timestamp``,
    the signature carries a trusted RFC 3161 timestamp from that authority, or nothing is
    returned. Raises GenerationFactsInvalid, ImageFormatNotAllowed, ImageTypeMismatch,
    TimestampUnavailable or SigningFailed.
    """
    sniffed = sniff_media_type(data)
    if sniffed not in _c2pa.sign_media_types():
        raise ImageFormatNotAllowed("only JPEG, PNG and WebP images can be signed")
    if media_type.split(";", 1)[0].strip().lower() != sniffed:
        raise ImageTypeMismatch(f"declared {media_type[:64]!r} but the bytes are {sniffed}")
    _check_facts(facts)
    signed = _c2pa.sign_embedded(
        data,
        sniffed,
        _manifest(facts, sniffed, watermark_key),
        chain_pem=identity.chain_pem,
        alg=identity.signer.alg,
        sign=identity.signer.sign,
        thumbnail=thumbnail,
        tsa_url=timestamp.url if timestamp is not None else None,
    )
    if timestamp is not None:
        _require_trusted_timestamp(signed, sniffed, timestamp)
    return signed


def _require_trusted_timestamp(signed: bytes, media_type: str, tsa: TimestampAuthority) -> None:
    """Read ``signed`` back with only the TSA's anchors: its timestamp must be trusted."""
    outcome = _c2pa.read_store(signed, media_type, anchors_pem=tsa.anchors_pem)
    stamp: Timestamp | None = None
    if outcome.kind == "store" and outcome.store is not None:
        stamp = timestamp_from_store(outcome.store)
    if stamp is None:
        raise TimestampUnavailable(
            "the signed output carries no timestamp; nothing was signed", reason="bad_reply"
        )
    if not stamp.trusted:
        who = f" ({stamp.authority})" if stamp.authority else ""
        raise TimestampUnavailable(
            f"the timestamp authority's certificate{who} does not chain to the TSA trust "
            f"anchors, or its timestamp does not check ({', '.join(stamp.codes)}); nothing "
            "was signed",
            reason="untrusted",
        )


def _manifest(
    facts: GenerationFacts, media_type: str, watermark_key: str | None = None
) -> dict[str, Any]:
    ingredient_ids = [f"ingredient-{index}" for index in range(len(facts.ingredients))]
    created: dict[str, Any] = {
        "action": "c2pa.created",
        "digitalSourceType": facts.digital_source_type,
        "softwareAgent": {"name": facts.model},
    }
    if ingredient_ids:
        created["parameters"] = {"ingredientIds": ingredient_ids}
    assertions: list[dict[str, Any]] = [
        {"label": "c2pa.actions", "data": {"actions": [created]}},
        {
            "label": CONSENT_ASSERTION_LABEL,
            "data": consent_assertion_data(facts.generation_id, facts.consent_refs),
        },
    ]
    if facts.decision is not None:
        assertions.append(
            {"label": DECISION_ASSERTION_LABEL, "data": decision_assertion_data(facts.decision)}
        )
    assertions.append(
        {
            "label": TRAINING_MINING_LABEL,
            "data": training_mining_assertion_data(training_granted=facts.training_granted),
        }
    )
    if watermark_key is not None:
        assertions.append(soft_binding_assertion(watermark_key))
    return {
        "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": _version()}],
        "title": f"{facts.generation_id}.{_EXTENSIONS[media_type]}",
        "format": media_type,
        "ingredients": [
            {
                "title": ingredient.title or "reference",
                "relationship": "inputTo",
                "instance_id": ingredient.instance_id,
                "informational_URI": ingredient.status_list_uri,
                "label": label,
            }
            for ingredient, label in zip(facts.ingredients, ingredient_ids, strict=True)
        ],
        "assertions": assertions,
    }


@functools.cache
def _version() -> str:
    # Read once per process: importlib.metadata scans the installed distributions each call.
    try:
        return importlib.metadata.version("consent-registry")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def _check_text(value: object, what: str, limit: int = _MAX_FIELD) -> None:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise GenerationFactsInvalid(f"{what} must be 1 to {limit} characters")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):  # noqa: PLR2004 - C0 controls and DEL
        raise GenerationFactsInvalid(f"{what} must not contain control characters")


def _check_facts(facts: GenerationFacts) -> None:
    _check_text(facts.generation_id, "generation_id")
    _check_text(facts.model, "model")
    if max(len(facts.ingredients), len(facts.consent_refs)) > _MAX_REFS:
        raise GenerationFactsInvalid(f"at most {_MAX_REFS} ingredients and consent references")
    for ingredient in facts.ingredients:
        _check_text(ingredient.consent_id, "ingredient consent_id")
        _check_text(ingredient.asset_id, "ingredient asset_id")
        _check_text(ingredient.status_list_uri, "ingredient status list uri", _MAX_URI)
        if ingredient.title:
            _check_text(ingredient.title, "ingredient title")
    for ref in facts.consent_refs:
        _check_text(ref.jti, "consent jti")
        _check_text(ref.status_list_uri, "status list uri", _MAX_URI)
        if isinstance(ref.status_idx, bool) or ref.status_idx < 0:
            raise GenerationFactsInvalid("a status list index must be a non-negative integer")
    if facts.decision is not None:
        _check_text(facts.decision.id, "decision id")
        _check_text(facts.decision.outcome, "decision outcome")
        _check_text(facts.decision.policy_version, "decision policy_version")
