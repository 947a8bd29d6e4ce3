"""The verification report: a plain value built from the SDK's manifest-store JSON.

Everything a manifest says is attacker-controlled text. Every string taken from it is cut
to a bounded length (the cut is marked), every list is capped, and the ingredient tree has
a depth limit and a cycle guard, so a hostile file cannot make the report unbounded.
Rendering (escaping for a terminal or HTML) is the renderer's job; the report keeps text.

``state`` follows the SDK: only its ``Trusted`` becomes ``trusted``, and a trusted verdict
that still lists failure codes is downgraded, never the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, TypeAlias

import msgspec

__all__ = [
    "AI_SOURCE_TYPES",
    "CONSENT_ASSERTION_LABEL",
    "DECISION_ASSERTION_LABEL",
    "MAX_TEXT",
    "SOFT_BINDING_LABEL",
    "TRAINING_MINING_LABEL",
    "Action",
    "CawgIdentity",
    "ConsentRef",
    "DecisionRef",
    "Ingredient",
    "Report",
    "SignerInfo",
    "SoftBinding",
    "State",
    "Timestamp",
    "TrainingMiningEntry",
    "bounded",
    "consent_assertion_data",
    "decision_assertion_data",
    "report_from_store",
    "timestamp_from_store",
    "training_mining_assertion_data",
]

State: TypeAlias = Literal[
    "trusted", "valid_untrusted", "invalid", "absent", "remote_manifest", "unsupported"
]
IngredientState: TypeAlias = Literal["trusted", "valid_untrusted", "invalid", "absent"]

CONSENT_ASSERTION_LABEL = "org.consent-registry.consent"
DECISION_ASSERTION_LABEL = "org.consent-registry.decision"
# The CAWG training-and-data-mining assertion (CAWG 1.x; C2PA 1.x called it c2pa.*).
TRAINING_MINING_LABEL = "cawg.training-mining"
# IPTC digital source types that say a trained model made (part of) the pixels.
AI_SOURCE_TYPES: frozenset[str] = frozenset(
    {"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "compositeSynthetic"}
)
MAX_TEXT = 512
MAX_CODE = 128
MAX_ITEMS = 100
MAX_INGREDIENTS = 200
MAX_DEPTH = 8
_UNTRUSTED_CODES = frozenset({"signingCredential.untrusted"})
_ACTIONS_LABELS = ("c2pa.actions", "c2pa.actions.v2")
_TRAINING_LABELS = (TRAINING_MINING_LABEL, "c2pa.training-mining")
SOFT_BINDING_LABEL: Final = "c2pa.soft-binding"
_TIMESTAMP_PREFIX = "timeStamp."
_TIMESTAMP_TRUSTED = "timeStamp.trusted"
# The SDK names the TSA certificate's common name only in its explanations (c2pa-rs 0.91):
# "timestamp message digest matched: NAME", "timestamp cert trusted: NAME, trust list: ...".
_TSA_NAME_PREFIXES = (
    "timestamp message digest matched: ",
    "timestamp cert trusted: ",
    "timestamp cert untrusted: ",
)
_CAWG_IDENTITY_LABEL = "cawg.identity"


class SignerInfo(msgspec.Struct, frozen=True, kw_only=True):
    issuer: str | None
    common_name: str | None
    alg: str | None
    serial_number: str | None = None


class Action(msgspec.Struct, frozen=True, kw_only=True):
    action: str
    digital_source_type: str | None = None
    software_agent: str | None = None


class Ingredient(msgspec.Struct, frozen=True, kw_only=True):
    """An ingredient of a manifest, with the state of its own provenance and its ingredients.

    Its codes are those recorded when it was added, with the reader's re-validation (the
    SDK's ingredient deltas, made with this verification's anchors) replacing codes of the
    same family. ``state`` is ``absent`` when it carries no manifest; otherwise it follows
    those codes, and ``trusted`` needs ``signingCredential.trusted`` among them.

    A reference photo of one of our outputs is named by its consent: ``instance_id``
    ``consent:<consent id>/<asset id>`` and ``informational_uri`` the status list of its
    token; an output signed before that names it ``sha256:<hex>`` (``verifier.sign``).
    """

    title: str | None
    format: str | None
    instance_id: str | None
    document_id: str | None
    relationship: str | None
    manifest_label: str | None
    state: IngredientState
    informational_uri: str | None = None
    failure_codes: tuple[str, ...] = ()
    success_codes: tuple[str, ...] = ()
    informational_codes: tuple[str, ...] = ()
    children: tuple[Ingredient, ...] = ()


class CawgIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """A CAWG identity assertion; ``failure_codes`` are the SDK's codes for it."""

    label: str
    sig_type: str | None
    issuer: str | None
    common_name: str | None
    alg: str | None
    failure_codes: tuple[str, ...] = ()


class Timestamp(msgspec.Struct, frozen=True, kw_only=True):
    """The RFC 3161 timestamp on the claim signature (C2PA ``sigTst2``), as the SDK checked it.

    ``time``: the TSA's ``genTime``, present only when the timestamp matches the signature.
    ``authority``: the common name of the TSA's certificate (text from the file, bounded).
    ``trusted``: the SDK said ``timeStamp.trusted``: the TSA certificate chains to one of the
    anchors the verification used. An untrusted or mismatched timestamp does not change
    ``state`` (the C2PA rule: a timestamp failure is not a signature failure), but then the
    signature proves nothing about when it was made.
    ``codes``: every ``timeStamp.*`` code the SDK gave (success, informational and failure).
    """

    time: str | None
    authority: str | None
    trusted: bool
    codes: tuple[str, ...] = ()


class SoftBinding(msgspec.Struct, frozen=True, kw_only=True):
    """A ``c2pa.soft-binding`` assertion: a watermark or fingerprint that ties copies of the
    image to this manifest. ``value`` is the first block's (for our watermark: its lookup
    key, which ``python -m verifier watermark`` reads from the pixels)."""

    alg: str | None
    value: str | None


class TrainingMiningEntry(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    use: str | None
    constraint_info: str | None = None


class ConsentRef(msgspec.Struct, frozen=True, kw_only=True):
    """A consent token used for a generation: its jti and its status-list entry only."""

    jti: str
    status_list_uri: str
    status_idx: int


class DecisionRef(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    outcome: str
    policy_version: str


class Report(msgspec.Struct, frozen=True, kw_only=True):
    state: State
    failure_codes: tuple[str, ...] = ()
    success_codes: tuple[str, ...] = ()
    informational_codes: tuple[str, ...] = ()
    ingredients: tuple[Ingredient, ...] = ()
    manifest_label: str | None = None
    claim_generator: str | None = None
    signer: SignerInfo | None = None
    signing_time: str | None = None
    timestamp: Timestamp | None = None
    actions: tuple[Action, ...] = ()
    digital_source_type: str | None = None
    ai_generated: bool = False
    cawg_identities: tuple[CawgIdentity, ...] = ()
    training_mining: tuple[TrainingMiningEntry, ...] = ()
    soft_bindings: tuple[SoftBinding, ...] = ()
    generation_id: str | None = None
    consents: tuple[ConsentRef, ...] = ()
    decision: DecisionRef | None = None
    remote_url: str | None = None
    detail: str | None = None

    @property
    def has_manifest(self) -> bool:
        return self.manifest_label is not None


def bounded(value: object, limit: int = MAX_TEXT) -> str | None:
    """``value`` as text of at most ``limit`` characters plus a marker, or None if not text."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated {len(text) - limit} chars]"


def consent_assertion_data(generation_id: str, consents: Sequence[ConsentRef]) -> dict[str, Any]:
    """The data of our consent assertion; status references use the IETF status-list shape."""
    return {
        "generation_id": generation_id,
        "consents": [
            {
                "jti": ref.jti,
                "status": {"status_list": {"idx": ref.status_idx, "uri": ref.status_list_uri}},
            }
            for ref in consents
        ],
    }


def decision_assertion_data(decision: DecisionRef) -> dict[str, Any]:
    return {
        "id": decision.id,
        "outcome": decision.outcome,
        "policy_version": decision.policy_version,
    }


def training_mining_assertion_data(*, training_granted: bool) -> dict[str, Any]:
    """The data of the CAWG training-and-data-mining assertion of one of our outputs.

    AI training (generative or not) is ``constrained`` when every consent behind the output
    granted ``ai.training`` (the caller decides that), ``notAllowed`` otherwise: a consent can
    be withdrawn, so the permission holds only while those consents are valid on their status
    lists, which ``constraint_info`` says. Data mining and inference are ``notAllowed``: no
    consent use grants them.
    """
    training: dict[str, str] = {"use": "notAllowed"}
    if training_granted:
        training = {
            "use": "constrained",
            "constraint_info": (
                "ai.training is granted by every consent named in "
                f"{CONSENT_ASSERTION_LABEL}, for as long as each is valid on its status list"
            ),
        }
    return {
        "entries": {
            "cawg.ai_generative_training": dict(training),
            "cawg.ai_training": dict(training),
            "cawg.data_mining": {"use": "notAllowed"},
            "cawg.ai_inference": {"use": "notAllowed"},
        }
    }


def timestamp_from_store(store: Mapping[str, Any]) -> Timestamp | None:
    """The timestamp of the active manifest's signature, or None when it carries none."""
    manifests = _mapping(store.get("manifests"))
    label = store.get("active_manifest")
    manifest = _mapping(manifests.get(label)) if isinstance(label, str) else {}
    results = _mapping(_mapping(store.get("validation_results")).get("activeManifest"))
    if results:
        entries = [
            *_list(results.get("success")),
            *_list(results.get("informational")),
            *_list(results.get("failure")),
        ]
    else:
        entries = _list(store.get("validation_status"))
    stamped = [
        _mapping(entry)
        for entry in entries
        if str(_mapping(entry).get("code", "")).startswith(_TIMESTAMP_PREFIX)
    ]
    if not stamped:
        return None
    codes = tuple(code for entry in stamped if (code := bounded(entry.get("code"), MAX_CODE)))
    return Timestamp(
        time=bounded(_mapping(manifest.get("signature_info")).get("time"), 64),
        authority=_tsa_name(stamped),
        trusted=_TIMESTAMP_TRUSTED in codes,
        codes=codes,
    )


def _tsa_name(entries: list[Mapping[str, Any]]) -> str | None:
    for entry in entries:
        explanation = entry.get("explanation")
        if not isinstance(explanation, str):
            continue
        for prefix in _TSA_NAME_PREFIXES:
            if explanation.startswith(prefix):
                name = explanation.removeprefix(prefix).split(", trust list:", 1)[0].strip()
                return bounded(name) if name else None
    return None


def report_from_store(store: Mapping[str, Any]) -> Report:
    """Build the report from the SDK's manifest-store JSON (``Reader.json()``)."""
    manifests = _mapping(store.get("manifests"))
    label = store.get("active_manifest")
    manifest = _mapping(manifests.get(label)) if isinstance(label, str) else {}
    results = _mapping(store.get("validation_results"))
    active = _mapping(results.get("activeManifest"))
    if active:
        failures = _codes(active.get("failure"))
        successes = _codes(active.get("success"))
        informational = _codes(active.get("informational"))
    else:
        failures, successes, informational = _codes(store.get("validation_status")), (), ()
    state = _state(store.get("validation_state"), failures)
    assertions = _list(manifest.get("assertions"))
    actions = _actions(assertions)
    source_type = next((a.digital_source_type for a in actions if a.digital_source_type), None)
    generation_id, consents = _consent_assertion(assertions)
    walker = _IngredientWalker(manifests, _ingredient_deltas(results.get("ingredientDeltas")))
    signature = _mapping(manifest.get("signature_info"))
    return Report(
        state=state,
        failure_codes=failures,
        success_codes=successes,
        informational_codes=informational,
        ingredients=walker.walk(manifest, label),
        manifest_label=bounded(label),
        claim_generator=_claim_generator(manifest),
        signer=_signer(signature) if signature else None,
        signing_time=bounded(signature.get("time"), 64),
        timestamp=timestamp_from_store(store),
        actions=actions,
        digital_source_type=source_type,
        ai_generated=any(_is_ai(a.digital_source_type) for a in actions),
        cawg_identities=_cawg_identities(assertions, store.get("validation_status"), active),
        training_mining=_training_mining(assertions),
        soft_bindings=_soft_bindings(assertions),
        generation_id=generation_id,
        consents=consents,
        decision=_decision_assertion(assertions),
    )


def _state(sdk_state: object, failures: tuple[str, ...]) -> State:
    if sdk_state == "Trusted":
        if not failures:
            return "trusted"
        return "valid_untrusted" if set(failures) <= _UNTRUSTED_CODES else "invalid"
    if sdk_state == "Valid":
        return "valid_untrusted"
    # "Invalid", or anything this SDK version does not document: fail closed.
    return "invalid"


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value[:MAX_ITEMS] if isinstance(value, list) else []


def _codes(entries: object) -> tuple[str, ...]:
    codes = []
    for entry in _list(entries):
        code = bounded(_mapping(entry).get("code"), MAX_CODE)
        if code is not None:
            codes.append(code)
    return tuple(codes)


def _base_label(label: object) -> str:
    # Repeated assertions carry an instance suffix: "c2pa.actions.v2__1".
    return label.split("__", 1)[0] if isinstance(label, str) else ""


def _text_or_name(value: object) -> str | None:
    if isinstance(value, Mapping):
        name = bounded(value.get("name"))
        version = bounded(value.get("version"), 64)
        return f"{name} {version}" if name and version else name
    return bounded(value)


def _actions(assertions: list[Any]) -> tuple[Action, ...]:
    actions: list[Action] = []
    for assertion in assertions:
        body = _mapping(assertion)
        if _base_label(body.get("label")) not in _ACTIONS_LABELS:
            continue
        for entry in _list(_mapping(body.get("data")).get("actions")):
            item = _mapping(entry)
            name = bounded(item.get("action"))
            if name is None or len(actions) >= MAX_ITEMS:
                continue
            source = item.get("digitalSourceType")
            actions.append(
                Action(
                    action=name,
                    digital_source_type=bounded(source.strip())
                    if isinstance(source, str)
                    else None,
                    software_agent=_text_or_name(item.get("softwareAgent")),
                )
            )
    return tuple(actions)


def _is_ai(source_type: str | None) -> bool:
    if not source_type:
        return False
    return source_type.rstrip("/").rsplit("/", 1)[-1] in AI_SOURCE_TYPES


def _claim_generator(manifest: Mapping[str, Any]) -> str | None:
    if isinstance(manifest.get("claim_generator"), str):
        return bounded(manifest["claim_generator"])
    parts = [_text_or_name(info) for info in _list(manifest.get("claim_generator_info"))[:8]]
    joined = " ".join(part for part in parts if part)
    return bounded(joined) if joined else None


def _signer(signature: Mapping[str, Any]) -> SignerInfo:
    return SignerInfo(
        issuer=bounded(signature.get("issuer")),
        common_name=bounded(signature.get("common_name")),
        alg=bounded(signature.get("alg"), 32),
        serial_number=bounded(signature.get("cert_serial_number"), 128),
    )


def _cawg_identities(
    assertions: list[Any], status: object, active: Mapping[str, Any]
) -> tuple[CawgIdentity, ...]:
    failures = [*_list(active.get("failure"))] if active else _list(status)
    identities = []
    for assertion in assertions:
        body = _mapping(assertion)
        label = body.get("label")
        if _base_label(label) != _CAWG_IDENTITY_LABEL or not isinstance(label, str):
            continue
        data = _mapping(body.get("data"))
        signature = _mapping(data.get("signature_info"))
        suffix = f"/c2pa.assertions/{label}"
        codes = tuple(
            code
            for entry in failures
            if str(_mapping(entry).get("url", "")).endswith(suffix)
            and (code := bounded(_mapping(entry).get("code"), MAX_CODE)) is not None
        )
        identities.append(
            CawgIdentity(
                label=bounded(label) or "",
                sig_type=bounded(_mapping(data.get("signer_payload")).get("sig_type"), 64),
                issuer=bounded(signature.get("issuer")),
                common_name=bounded(signature.get("common_name")),
                alg=bounded(signature.get("alg"), 32),
                failure_codes=codes,
            )
        )
    return tuple(identities[:MAX_ITEMS])


def _soft_bindings(assertions: list[Any]) -> tuple[SoftBinding, ...]:
    found = []
    for assertion in assertions:
        body = _mapping(assertion)
        if _base_label(body.get("label")) != SOFT_BINDING_LABEL:
            continue
        data = _mapping(body.get("data"))
        blocks = data.get("blocks")
        first = _mapping(blocks[0]) if isinstance(blocks, list) and blocks else {}
        found.append(
            SoftBinding(alg=bounded(data.get("alg"), 128), value=bounded(first.get("value"), 128))
        )
    return tuple(found[:MAX_ITEMS])


def _training_mining(assertions: list[Any]) -> tuple[TrainingMiningEntry, ...]:
    entries = []
    for assertion in assertions:
        body = _mapping(assertion)
        if _base_label(body.get("label")) not in _TRAINING_LABELS:
            continue
        for key, value in list(_mapping(_mapping(body.get("data")).get("entries")).items())[
            :MAX_ITEMS
        ]:
            item = _mapping(value)
            entries.append(
                TrainingMiningEntry(
                    key=bounded(key) or "",
                    use=bounded(item.get("use"), 64),
                    constraint_info=bounded(item.get("constraint_info")),
                )
            )
    return tuple(entries[:MAX_ITEMS])


class _StatusListWire(msgspec.Struct, frozen=True):
    idx: int
    uri: str


class _StatusWire(msgspec.Struct, frozen=True):
    status_list: _StatusListWire


class _ConsentWire(msgspec.Struct, frozen=True):
    jti: str
    status: _StatusWire


class _ConsentAssertionWire(msgspec.Struct, frozen=True):
    generation_id: str
    consents: list[_ConsentWire]


def _assertion_data(assertions: list[Any], label: str) -> object:
    for assertion in assertions:
        body = _mapping(assertion)
        if body.get("label") == label:
            return body.get("data")
    return None


def _consent_assertion(assertions: list[Any]) -> tuple[str | None, tuple[ConsentRef, ...]]:
    data = _assertion_data(assertions, CONSENT_ASSERTION_LABEL)
    if data is None:
        return None, ()
    try:
        wire = msgspec.convert(data, _ConsentAssertionWire)
    except msgspec.ValidationError:
        # Not ours, or not well formed: the report then names no consent at all, and a
        # verifier that needs consent references treats that as "not shown".
        return None, ()
    consents = tuple(
        ConsentRef(
            jti=bounded(item.jti) or "",
            status_list_uri=bounded(item.status.status_list.uri, 2048) or "",
            status_idx=item.status.status_list.idx,
        )
        for item in wire.consents[:MAX_ITEMS]
    )
    return bounded(wire.generation_id), consents


def _decision_assertion(assertions: list[Any]) -> DecisionRef | None:
    data = _mapping(_assertion_data(assertions, DECISION_ASSERTION_LABEL))
    fields = [bounded(data.get(name)) for name in ("id", "outcome", "policy_version")]
    if not all(isinstance(data.get(n), str) for n in ("id", "outcome", "policy_version")):
        return None
    decision_id, outcome, policy_version = (field or "" for field in fields)
    return DecisionRef(id=decision_id, outcome=outcome, policy_version=policy_version)


_Codes: TypeAlias = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def _ingredient_deltas(value: object) -> dict[str, _Codes]:
    deltas: dict[str, _Codes] = {}
    for entry in _list(value):
        item = _mapping(entry)
        uri = item.get("ingredientAssertionURI")
        delta = _mapping(item.get("validationDeltas"))
        if isinstance(uri, str):
            deltas[uri] = (
                _codes(delta.get("failure")),
                _codes(delta.get("success")),
                _codes(delta.get("informational")),
            )
    return deltas


class _IngredientWalker:
    """Builds the ingredient tree with a shared budget, a depth limit and a cycle guard."""

    def __init__(self, manifests: Mapping[str, Any], deltas: Mapping[str, _Codes]) -> None:
        self._manifests = manifests
        self._deltas = deltas
        self._budget = MAX_INGREDIENTS

    def walk(
        self, manifest: Mapping[str, Any], label: object, seen: frozenset[str] = frozenset()
    ) -> tuple[Ingredient, ...]:
        if len(seen) >= MAX_DEPTH or not isinstance(label, str):
            return ()
        seen |= {label}
        result = []
        for entry in _list(manifest.get("ingredients")):
            if self._budget <= 0:
                break
            self._budget -= 1
            result.append(self._ingredient(_mapping(entry), label, seen))
        return tuple(result)

    def _ingredient(self, item: Mapping[str, Any], parent: str, seen: frozenset[str]) -> Ingredient:
        # The ingredient carries the results recorded when it was added; the reader's deltas
        # re-validate it now (e.g. with our anchors) and replace those of the same family.
        own = _mapping(_mapping(item.get("validation_results")).get("activeManifest"))
        uri = f"self#jumbf=/c2pa/{parent}/c2pa.assertions/{item.get('label')}"
        now_failures, now_successes, now_informational = self._deltas.get(uri, ((), (), ()))
        replaced = {_family(code) for code in (*now_failures, *now_successes)}
        failures = _current(_codes(own.get("failure")), replaced) + now_failures
        successes = _current(_codes(own.get("success")), replaced) + now_successes
        informational = _codes(own.get("informational")) + now_informational
        label = item.get("active_manifest")
        child = _mapping(self._manifests.get(label)) if isinstance(label, str) else {}
        children = self.walk(child, label, seen) if child and label not in seen else ()
        return Ingredient(
            title=bounded(item.get("title")),
            format=bounded(item.get("format"), 64),
            instance_id=bounded(item.get("instance_id")),
            document_id=bounded(item.get("document_id")),
            relationship=bounded(item.get("relationship"), 64),
            manifest_label=bounded(label) if child else None,
            informational_uri=bounded(item.get("informational_URI"), 2048),
            state=_ingredient_state(
                has_manifest=bool(child), failures=failures, successes=successes
            ),
            failure_codes=failures,
            success_codes=successes,
            informational_codes=informational,
            children=children,
        )


def _family(code: str) -> str:
    # "signingCredential.untrusted" and "signingCredential.trusted" answer the same question.
    return code.rsplit(".", 1)[0]


def _current(recorded: tuple[str, ...], replaced: set[str]) -> tuple[str, ...]:
    return tuple(code for code in recorded if _family(code) not in replaced)


def _ingredient_state(
    *, has_manifest: bool, failures: tuple[str, ...], successes: tuple[str, ...]
) -> IngredientState:
    if set(failures) - _UNTRUSTED_CODES:
        return "invalid"
    if not has_manifest:
        return "absent"
    if failures or "signingCredential.trusted" not in successes:
        return "valid_untrusted"
    return "trusted"
