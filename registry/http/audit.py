"""The audit log over HTTP: the public checkpoint and Merkle proofs, the admin event listing."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, MediaType, Response, get, post
from litestar.di import NamedDependency  # noqa: TC002 - Litestar reads annotations at runtime
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter, QueryParameter

from registry.core import audit, audit_tree
from registry.core.auth import Client, Role
from registry.core.errors import NotFound
from registry.http.deps import AppServices  # noqa: TC001 - Litestar reads annotations at runtime
from registry.http.security import BEARER, allow, public

# Event numbers are PostgreSQL bigints; a larger ``after`` is refused, not sent to the server.
MAX_SEQ = 2**63 - 1


class AuditController(Controller):
    path = "/v1/audit"
    tags = ["audit"]  # noqa: RUF012 - Litestar reads class attributes

    @get(
        "/checkpoint",
        summary="Latest signed checkpoint of the audit log (public)",
        description=(
            "`checkpoint` is a compact JWS (`typ: audit-checkpoint+jwt`) over "
            "`{iss, tree_size, head, root, iat}`, verifiable with the JWKS; `note` is the same "
            "checkpoint as a C2SP signed note (`origin`, tree size, base64 Merkle root), "
            "signed by the key whose verifier key is `note_key`. `root_hash` is the RFC 9162 "
            "Merkle root over the first `tree_size` event hashes. Keep one: a later log that "
            "does not extend it has been rewritten (ask `/v1/audit/proofs/consistency`)."
        ),
        cache=False,
    )
    async def checkpoint(self, services: AppServices) -> audit.Checkpoint:
        async with services.connection() as conn:
            latest = await audit.latest_checkpoint(conn)
        if latest is None:
            msg = "no checkpoint has been signed yet"
            raise NotFound(msg)
        return latest

    @get(
        "/checkpoint.note",
        summary="Latest checkpoint as a C2SP signed note (public, text/plain)",
        description=(
            "c2sp.org/tlog-checkpoint: `<origin>\\n<tree size>\\n<base64 root hash>\\n`, a "
            "blank line and `— <origin> <base64(key ID || signature)>`. Ed25519 (signature "
            "type 0x01) or ECDSA P-256 (0x02) as the registry's active key is; the verifier "
            "key derives from the JWKS (`python -m verifier audit`)."
        ),
        media_type=MediaType.TEXT,
        cache=False,
    )
    async def checkpoint_note(self, services: AppServices) -> str:
        async with services.connection() as conn:
            signed = await audit.latest_note(conn)
        if signed is None:
            msg = "no checkpoint has been signed as a note yet"
            raise NotFound(msg)
        return signed

    @get(
        "/proofs/inclusion",
        summary="Merkle inclusion proof of one event (public)",
        description=(
            "RFC 9162 section 2.1.3: the audit path of leaf `index` (the event with "
            "`seq = index + 1`) in the tree of the first `tree_size` events. The leaf is the "
            "event's stored hash (`event_hash`); `leaf_hash` is SHA-256(0x00 || leaf). Hashes "
            "only, hex. `index` must be below `tree_size`, and `tree_size` at most the log's."
        ),
        guards=[public],
    )
    async def inclusion_proof(
        self,
        services: AppServices,
        index: int = Parameter(ge=0, le=MAX_SEQ, description="The leaf: event seq - 1"),
        tree_size: int = Parameter(ge=1, le=MAX_SEQ, description="The tree: its first events"),
    ) -> audit_tree.InclusionProof:
        async with services.connection() as conn:
            return await audit_tree.inclusion_proof(conn, index, tree_size)

    @get(
        "/proofs/consistency",
        summary="Merkle consistency proof between two tree sizes (public)",
        description=(
            "RFC 9162 section 2.1.4: the proof that the tree of the first `to` events "
            "extends the tree of the first `from`, with both roots. Needs "
            "`1 <= from <= to <=` the log's size."
        ),
        guards=[public],
    )
    async def consistency_proof(
        self,
        services: AppServices,
        first: Annotated[
            int, QueryParameter(name="from", ge=1, le=MAX_SEQ, description="The older size")
        ],
        second: Annotated[
            int, QueryParameter(name="to", ge=1, le=MAX_SEQ, description="The newer size")
        ],
    ) -> audit_tree.ConsistencyProof:
        async with services.connection() as conn:
            return await audit_tree.consistency_proof(conn, first, second)

    @post(
        "/checkpoint",
        summary="Sign a checkpoint of the current head now",
        guards=[allow(Role.ADMIN)],
        security=BEARER,
        status_code=200,
        responses={
            201: ResponseSpec(
                data_container=audit.Checkpoint,
                description="A new checkpoint of the head (200: the head had one already).",
            )
        },
        # An empty log has nothing to checkpoint.
        opt={"problems": (404,)},
    )
    async def sign_checkpoint(
        self, services: AppServices, caller: NamedDependency[Client]
    ) -> Response[audit.Checkpoint]:
        async with services.unit_of_work(caller) as uow:
            made = await audit.make_checkpoint(
                uow.conn,
                services.keyring,
                issuer=services.settings.public_issuer,
                note_signer=services.keyring.signer(),
            )
            latest = made or await audit.latest_checkpoint(uow.conn)
        if latest is None:
            msg = "the audit log is empty; there is nothing to checkpoint"
            raise NotFound(msg)
        return Response(latest, status_code=201 if made else 200)

    @get(
        "/events",
        summary="List audit events (admin)",
        guards=[allow(Role.ADMIN)],
        security=BEARER,
    )
    async def events(
        self,
        services: AppServices,
        after: int = Parameter(
            default=0, ge=0, le=MAX_SEQ, description="Return events after this seq"
        ),
        limit: int = Parameter(default=100, ge=1, le=1000),
        subject_type: str | None = Parameter(default=None, max_length=100),
        subject_id: str | None = Parameter(default=None, max_length=200),
    ) -> dict[str, Any]:
        async with services.connection() as conn:
            events = await audit.list_events(
                conn, after=after, limit=limit, subject_type=subject_type, subject_id=subject_id
            )
        return {"events": events, "next_after": events[-1].seq if events else after}
