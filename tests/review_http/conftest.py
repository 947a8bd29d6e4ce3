"""Fixtures for the review queue, appeals, takedown and KPIs over HTTP.

Decisions are made the way the gate makes them: ``moderation.decide`` over real evidence
under the shipped policy, stored with the gate's own repository functions (decision, its
consent tokens, its review ticket) in one transaction.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

import pytest

import keys
from moderation import (
    ClassifierResult,
    Evidence,
    HashFacts,
    ImageFacts,
    PromptFacts,
    ProvenanceFacts,
    decide,
    default_policy,
)
from moderation.consent import ConsentCheck, SourceEvidence
from registry.consent.crypto import FieldCipher
from registry.consent.records import DataKeys
from registry.gate import DecisionConsent, NewDecision, open_review_ticket
from registry.gate.repository import insert_decision
from registry.gate.vault import DecisionVault

# sexual_content: review from 0.3, block from 0.7 in the shipped policy.
SCORES = {"allowed": 0.0, "review": 0.4, "blocked": 0.9}
TABLES = (
    "moderation_decisions",
    "review_tickets",
    "review_appeals",
    "moderation_decision_history",
    "takedown_webhooks",
    "takedown_deliveries",
    "audit_events",
)


@dataclass
class Party:
    client_id: str
    headers: dict[str, str]


@dataclass
class Stored:
    decision_id: str
    ticket_id: str | None
    status: str


def evidence(
    sexual: float,
    *,
    received_at: dt.datetime | None = None,
    sources: tuple[SourceEvidence, ...] = (),
    classifier_error: str | None = None,
    latency_ms: float = 12.5,
) -> Evidence:
    """A publish-stage evidence record with one computed classifier result."""
    result = (
        ClassifierResult(
            classifier="http", origin="computed", error=classifier_error, latency_ms=latency_ms
        )
        if classifier_error
        else ClassifierResult(
            classifier="http",
            origin="computed",
            scores={
                "sexual_content": sexual,
                "minor_presence": 0.0,
                "nonconsensual_transformation": 0.01,
            },
            latency_ms=latency_ms,
        )
    )
    return Evidence(
        stage="publish",
        received_at=received_at or dt.datetime.now(dt.UTC),
        image=ImageFacts(
            decoded=True,
            sha256=secrets.token_hex(32),
            phash="8f3a5c7e91b2d4f6",
            media_type="image/png",
            width=64,
            height=64,
        ),
        prompt=PromptFacts(),
        sources=sources,
        provenance=ProvenanceFacts(state="absent"),
        classifiers=(result,),
        hashes=HashFacts(),
    )


@pytest.fixture
def vault(settings: Any) -> DecisionVault:
    """The gate's vault over the test service's master key: decisions stored here open there."""
    cipher = FieldCipher(keys.MasterKey.from_text(settings.master_key))
    return DecisionVault(DataKeys(cipher))


async def store_decision(
    pool: Any,
    vault: DecisionVault,
    *,
    client: Party,
    tenant: str,
    status: str = "review",
    received_at: dt.datetime | None = None,
    consents: tuple[tuple[str, str], ...] = (),
    classifier_error: str | None = None,
    latency_ms: float = 12.5,
    prompt: str = "a portrait in watercolour",
) -> Stored:
    """Decide like the gate and store the decision (with its ticket when in review).

    ``consents`` are (consent_id, jti) pairs the decision relied on, one per photo source.
    """
    sources = tuple(
        SourceEvidence(
            type="photo",
            asset_id=f"ast_{i}",
            token_present=True,
            check=ConsentCheck(
                valid=True,
                consent_id=consent_id,
                jti=jti,
                uses=("reference.generate", "publish.public", "content.suggestive"),
            ),
        )
        for i, (consent_id, jti) in enumerate(consents)
    )
    facts = evidence(
        SCORES[status],
        received_at=received_at,
        sources=sources,
        classifier_error=classifier_error,
        latency_ms=latency_ms,
    )
    decision = decide(facts, default_policy())
    if classifier_error is None:
        assert decision.status == status, decision.reasons
    new = NewDecision(
        decision_id="dec_" + secrets.token_urlsafe(16),
        generation_id="gen-" + secrets.token_hex(6),
        stage="publish",
        client_id=client.client_id,
        tenant=tenant,
        image_sha256=facts.image.sha256 if facts.image else None,
        image_phash=facts.image.phash if facts.image else None,
        request_sha256=secrets.token_hex(32),
        status=decision.status,
        reasons=decision.reasons,
        scores=decision.scores,
        evidence=facts,
        request={
            "prompt": prompt,
            "user_id": "user-1",
            "source_assets": [{"type": s.type, "asset_id": s.asset_id} for s in sources],
        },
        policy_version=decision.policy_version,
        policy_label=decision.policy_label,
        consents=tuple(
            DecisionConsent(position=i, asset_id=f"ast_{i}", consent_id=c, jti=j)
            for i, (c, j) in enumerate(consents)
        ),
    )
    async with pool.acquire() as conn, conn.transaction():
        sealed, data_key_id = await vault.seal(conn, new.decision_id, new.request, new.evidence)
        assert await insert_decision(conn, new, sealed=sealed, data_key_id=data_key_id)
        ticket = None
        if decision.review is not None:
            ticket = await open_review_ticket(
                conn,
                decision_id=new.decision_id,
                kind="review",
                tier=decision.review.tier,
                rank=decision.review.rank,
                deadline=decision.review.deadline,
            )
    return Stored(decision_id=new.decision_id, ticket_id=ticket, status=decision.status)


async def snapshot(pool: Any) -> dict[str, Any]:
    """Row counts and the mutable columns of decisions and tickets: 'nothing changed' checks."""
    async with pool.acquire() as conn:
        counts = {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}  # noqa: S608
        decisions = [
            tuple(r)
            for r in await conn.fetch(
                "SELECT decision_id, current_status, updated_at FROM moderation_decisions"
                " ORDER BY decision_id"
            )
        ]
        tickets = [
            tuple(r)
            for r in await conn.fetch(
                "SELECT ticket_id, status, claimed_by, lease_expires_at, closed_by, outcome"
                " FROM review_tickets ORDER BY ticket_id"
            )
        ]
    return {"counts": counts, "decisions": decisions, "tickets": tickets}


@pytest.fixture
def party(make_client):
    async def make(role: str, tenant: str, name: str | None = None) -> Party:
        client_id, headers = await make_client(role, tenant=tenant, name=name or f"{role} client")
        return Party(client_id, headers)

    return make


@pytest.fixture
async def staff(party) -> tuple[Party, Party]:
    """Two reviewers of the operator's tenant, who work every tenant's queue."""
    return await party("reviewer", "system", "reviewer one"), await party(
        "reviewer", "system", "reviewer two"
    )


@pytest.fixture
async def publisher(party) -> Party:
    return await party("publisher", "pubco")
