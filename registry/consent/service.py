"""The consent registry as the rest of the service sees it: ``ConsentService``.

Each operation takes the caller's connection (inside the caller's transaction) and returns a
value saying what changed, including the audit events to append (``events``). The shell opens
the transaction, calls the operation, appends those events and commits, so a change and its
audit record are committed together or not at all. Operations raise consent errors with
stable codes and never know about HTTP.

This module binds the operations to this process's keys and settings; each operation lives
in a module of its own: ``enrolment`` (templates, signers), ``submission``, ``records``
(reading), ``issuance`` (grants, tokens, verification), ``revocation`` (withdrawal),
``suspension`` and ``erasure``. The values they return are ``views``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.consent import (
    enrolment,
    erasure,
    issuance,
    records,
    repository,
    revocation,
    status,
    submission,
    suspension,
)
from registry.consent.config import ConsentSettings
from registry.consent.crypto import FieldCipher, SubjectIndex
from registry.consent.errors import ConsentError, StatusListNotFoundError
from registry.consent.records import MAX_LISTED, DataKeys
from registry.consent.revocation import ProducedUnder, WithdrawalListers
from registry.consent.submission import PreparedAsset, Upload, prepare_uploads
from registry.consent.views import (
    Affected,
    AssetView,
    ConsentStatus,
    ConsentView,
    Erased,
    Granted,
    IssuedToken,
    Resumed,
    SignerEnrolled,
    SignerView,
    Submitted,
    SubmittedAsset,
    Suspended,
    TemplateRefView,
    TemplateRegistered,
    TemplateView,
    Withdrawn,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import asyncpg

    from keys import KeyRing, MasterKey
    from registry.consent.forms import SignerRole
    from registry.consent.repository import TokenRow
    from registry.consent.tokens import TokenVerification
    from registry.core.auth import Client

__all__ = [
    "MAX_LISTED",
    "Affected",
    "AssetView",
    "ConsentError",
    "ConsentService",
    "ConsentSettings",
    "ConsentStatus",
    "ConsentView",
    "Erased",
    "Granted",
    "IssuedToken",
    "PreparedAsset",
    "ProducedUnder",
    "Resumed",
    "SignerEnrolled",
    "SignerView",
    "Submitted",
    "SubmittedAsset",
    "Suspended",
    "TemplateRefView",
    "TemplateRegistered",
    "TemplateView",
    "Upload",
    "WithdrawalListers",
    "Withdrawn",
    "prepare_uploads",
]


class ConsentService:
    """The consent registry's operations, bound to this process's keys and settings."""

    def __init__(
        self,
        *,
        settings: ConsentSettings,
        keyring: KeyRing,
        cipher: FieldCipher,
        subject_index: SubjectIndex,
        produced_under: WithdrawalListers | None = None,
    ) -> None:
        self.settings = settings
        self._keyring = keyring
        self._keys = DataKeys(cipher)
        self._index = subject_index
        self._listers = produced_under or WithdrawalListers()
        self.status_lists = status.StatusListCache(
            issuer=settings.issuer, ttl_seconds=settings.status_list_ttl
        )

    @property
    def data_keys(self) -> DataKeys:
        """The store of data keys, for the records of other rooms derived from consents (the
        gate's decisions), so one erasure and one shredding reach them all."""
        return self._keys

    def end_user_ref(self, tenant: str, user_id: str) -> str:
        """The blind index of a gate request's end user (see ``SubjectIndex.end_user``)."""
        return self._index.end_user(tenant, user_id)

    @classmethod
    async def load(
        cls,
        conn: asyncpg.Connection,
        *,
        settings: ConsentSettings,
        keyring: KeyRing,
        master_key: MasterKey,
        produced_under: WithdrawalListers | None = None,
    ) -> ConsentService:
        """Load (or create, once for every process) the blind-index key."""
        cipher = FieldCipher(master_key)
        name = SubjectIndex.NAME
        wrapped = await repository.secret(
            conn, name, cipher.wrap_secret(name, SubjectIndex.generate_key())
        )
        index = SubjectIndex(cipher.unwrap_secret(name, wrapped))
        return cls(
            settings=settings,
            keyring=keyring,
            cipher=cipher,
            subject_index=index,
            produced_under=produced_under,
        )

    def __repr__(self) -> str:
        return f"ConsentService(issuer={self.settings.issuer!r})"

    # Templates and signers.

    async def register_template(
        self,
        conn: asyncpg.Connection,
        *,
        actor: Client,
        template_id: str,
        title: str,
        text: str,
        uses: Sequence[str],
    ) -> TemplateRegistered:
        return await enrolment.register_template(
            conn, actor=actor, template_id=template_id, title=title, text=text, uses=uses
        )

    async def get_template(self, conn: asyncpg.Connection, template_id: str) -> TemplateView:
        return await enrolment.get_template(conn, template_id)

    async def enroll_signer(
        self,
        conn: asyncpg.Connection,
        *,
        actor: Client,
        jwk: Mapping[str, Any],
        subject_ref: str,
        role: SignerRole,
    ) -> SignerEnrolled:
        return await enrolment.enroll_signer(
            conn, self._keys, actor=actor, jwk=jwk, subject_ref=subject_ref, role=role
        )

    # Consents.

    async def submit(
        self,
        conn: asyncpg.Connection,
        *,
        actor: Client,
        form: str,
        uploads: Sequence[PreparedAsset],
        idempotency_key: str | None,
    ) -> Submitted:
        """Verify a signed consent form (and its uploaded photos) and record it."""
        return await submission.submit(
            conn,
            settings=self.settings,
            keyring=self._keyring,
            keys=self._keys,
            index=self._index,
            actor=actor,
            form=form,
            uploads=uploads,
            idempotency_key=(
                None
                if idempotency_key is None
                else self._index.idempotency_key(actor.tenant, idempotency_key)
            ),
        )

    async def get_consent(
        self, conn: asyncpg.Connection, *, actor: Client, consent_id: str
    ) -> ConsentView:
        return await records.get_consent(conn, self._keys, actor=actor, consent_id=consent_id)

    async def find_consents(
        self, conn: asyncpg.Connection, *, actor: Client, subject_ref: str
    ) -> list[ConsentView]:
        return await records.find_consents(
            conn, self._keys, self._index, actor=actor, subject_ref=subject_ref
        )

    async def tenant_consents(self, conn: asyncpg.Connection, tenant: str) -> list[ConsentView]:
        """Every consent of ``tenant`` as its clients read them, for the tenant's export."""
        return await records.tenant_consents(conn, self._keys, tenant)

    async def tokens_of(self, conn: asyncpg.Connection, consent_id: str) -> list[TokenRow]:
        """The tokens issued from ``consent_id`` (ids, audience, expiry, status now)."""
        return await repository.tokens_of(conn, consent_id)

    # Grants and tokens.

    async def grant(
        self, conn: asyncpg.Connection, *, actor: Client, consent_id: str, client_id: str
    ) -> Granted:
        return await issuance.grant(conn, actor=actor, consent_id=consent_id, client_id=client_id)

    async def issue_token(
        self,
        conn: asyncpg.Connection,
        *,
        actor: Client,
        consent_id: str,
        uses: Sequence[str],
        asset_ids: Sequence[str] | None,
        ttl_seconds: int | None,
    ) -> IssuedToken:
        return await issuance.issue_token(
            conn,
            settings=self.settings,
            keyring=self._keyring,
            keys=self._keys,
            actor=actor,
            consent_id=consent_id,
            uses=uses,
            asset_ids=asset_ids,
            ttl_seconds=ttl_seconds,
        )

    async def verify(
        self,
        conn: asyncpg.Connection,
        *,
        actor: Client,
        token: str,
        use: str | None,
        asset_sha256: str | None,
        audience: str | None,
    ) -> TokenVerification:
        """Online verification: signature, claims, audience, binding, use and live status.

        The status comes from the token's own row, read now, so a withdrawal committed by
        any process fails the token here at once.
        """
        return await issuance.verify(
            conn,
            settings=self.settings,
            keyring=self._keyring,
            actor=actor,
            token=token,
            use=use,
            asset_sha256=asset_sha256,
            audience=audience,
        )

    async def recorded_asset(
        self, conn: asyncpg.Connection, consent_id: str, asset_id: str
    ) -> AssetView | None:
        """The asset as the registry records it (its SHA-256 and, when the photo was uploaded,
        its pHash); None when the consent does not hold it. The gate matches sources on these:
        tokens carry commitments, not hashes. An erased consent's asset has no hashes left."""
        record = await repository.get_record(conn, consent_id)
        if record is None:
            return None
        _, assets = await records.open_record(conn, self._keys, record)
        return next((asset for asset in assets if asset.asset_id == asset_id), None)

    async def signer_role(self, conn: asyncpg.Connection, consent_id: str) -> str | None:
        """Who signed the consent's form; the gate asks it of a consent a token it verified
        names (a guardian's consent is what a likely minor's output needs)."""
        return await repository.signer_role(conn, consent_id)

    async def token_statuses(
        self, conn: asyncpg.Connection, jtis: Sequence[str]
    ) -> Mapping[str, int]:
        """The status now (0 valid, 1 revoked, 2 suspended) of each of these tokens we issued;
        a jti we never issued is absent."""
        return await repository.token_statuses(conn, jtis)

    async def lock_token_statuses(
        self, conn: asyncpg.Connection, jtis: Sequence[str]
    ) -> Mapping[str, int]:
        """Like ``token_statuses``, share-locking the tokens' rows until the transaction ends,
        so no revocation commits before what the caller writes on the strength of them."""
        return await repository.lock_token_statuses(conn, jtis)

    async def status_list_token(self, conn: asyncpg.Connection, list_id: str) -> str:
        if not status.valid_list_id(list_id):
            raise StatusListNotFoundError("no such status list")
        return await self.status_lists.token(
            conn, list_id, signer=self._keyring, kid=self._keyring.signer().kid
        )

    # Withdrawal and erasure.

    async def withdraw(
        self,
        conn: asyncpg.Connection,
        *,
        actor: Client,
        consent_id: str,
        withdrawal: str | None,
        reason: str | None,
    ) -> Withdrawn:
        """Withdraw with the signer's signed withdrawal, or as an admin with a reason."""
        return await revocation.withdraw(
            conn,
            self._keys,
            self._listers,
            actor=actor,
            consent_id=consent_id,
            withdrawal=withdrawal,
            reason=reason,
        )

    async def affected_by_withdrawal(self, conn: asyncpg.Connection, consent_id: str) -> Affected:
        """Everything produced under the consent's tokens, for takedown."""
        return await revocation.affected(conn, self._listers, consent_id)

    async def suspend(
        self, conn: asyncpg.Connection, *, actor: Client, consent_id: str, reason: str | None
    ) -> Suspended:
        """Suspend the consent: its tokens read SUSPENDED until it is resumed."""
        return await suspension.suspend(conn, actor=actor, consent_id=consent_id, reason=reason)

    async def resume(
        self, conn: asyncpg.Connection, *, actor: Client, consent_id: str, reason: str | None
    ) -> Resumed:
        """End the consent's suspension: its suspended tokens are valid again."""
        return await suspension.resume(conn, actor=actor, consent_id=consent_id, reason=reason)

    async def erase(self, conn: asyncpg.Connection, *, actor: Client, consent_id: str) -> Erased:
        """Withdraw (if still active), then make the record's personal data unrecoverable."""
        return await erasure.erase(conn, self._listers, actor=actor, consent_id=consent_id)
