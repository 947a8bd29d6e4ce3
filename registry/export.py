"""A tenant's records to take away: ``registry export`` and ``GET /v1/admin/export``.

An export is a set of files (docs/export.md): one JSON-lines file per record type, the
public keys and the signed audit checkpoint that verify them, and ``manifest.json`` with the
SHA-256 of every other file. ``python -m verifier export DIR`` checks it offline with nothing
but its own contents.

What goes in is what the tenant's own clients can already read through the API, and no more:
consents as ``GET /v1/consents/{id}`` shows them (the receipt and the subject reference the
tenant chose), token ids and statuses (a token itself is never stored), outputs with their
assertions as stored, and the gate's decisions with what is in clear plus the request the
tenant's own client sent. The sealed evidence is left out: it holds the registry's hashes of
the source photos, which may be other tenants' consents, and hash-list matches of lists the
tenant may not own. No data key, sealed column or other tenant's record is ever read out.

Everything is read in one unit of work, which signs a checkpoint of the audit log first (or
takes the latest when it covers the head) and proves each of the tenant's events against it;
the export itself is audited in the same transaction, after the checkpoint, so the next
export holds its record. Files are encoded, and for HTTP packed into a tar, in a worker
thread: an export of a large tenant does not hold up the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import shutil
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec

from registry.core import audit, audit_tree, auth
from registry.core.errors import InvalidRequest, NotFound
from registry.core.key_history import key_history_document
from registry.gate import export_file, list_lists
from registry.gate import repository as gate_repository
from registry.provenance import repository as provenance_repository
from registry.review import repository as review_repository

if TYPE_CHECKING:
    from collections.abc import Iterator

    from registry.core.uow import UnitOfWork
    from registry.services import Services

__all__ = [
    "FORMAT",
    "MANIFEST",
    "ExportTargetNotEmpty",
    "TenantNotFound",
    "check_target",
    "collect",
    "tar_chunks",
    "write_directory",
]

FORMAT: Final = "registry-export/1"
MANIFEST: Final = "manifest.json"
# Decisions read per statement while listing the tenant's.
_PAGE: Final = 500
_TAR_CHUNK: Final = 64 * 1024


class TenantNotFound(NotFound):
    """No client was ever made in this tenant: a typo, not an empty tenant, so it is refused
    rather than answered with an empty export that looks like a tenant with no records."""

    code = "tenant_not_found"


class ExportTargetNotEmpty(InvalidRequest):
    """The output directory holds something (or is a file): nothing is written over it."""

    code = "export_target_not_empty"


def check_target(out_dir: Path) -> None:
    """Refuse ``out_dir`` unless it is missing (its parent existing) or an empty directory."""
    if out_dir.exists() or out_dir.is_symlink():
        if not out_dir.is_dir() or any(out_dir.iterdir()):
            msg = f"{out_dir} is not an empty directory: nothing was written"
            raise ExportTargetNotEmpty(msg)
    elif not out_dir.parent.is_dir():
        msg = f"{out_dir.parent} is not a directory: nothing was written"
        raise ExportTargetNotEmpty(msg)


async def collect(
    services: Services, uow: UnitOfWork, tenant: str, *, by_tenant: str | None = None
) -> dict[str, bytes]:
    """Every file of ``tenant``'s export, ``manifest.json`` included, by relative path; the
    export is recorded in ``uow`` (``tenant.exported``).

    ``by_tenant`` is the tenant of the admin asking (None: the operator's command). An admin
    of ``auth.SYSTEM_TENANT`` exports any tenant, any other admin only its own: another
    tenant is TenantNotFound, the same answer as a tenant that does not exist, so an admin
    learns nothing of the others."""
    conn = uow.conn
    foreign = by_tenant not in {None, auth.SYSTEM_TENANT, tenant}
    if foreign or not await auth.tenant_known(conn, tenant):
        msg = f"no tenant named {tenant[:100]!r}"
        raise TenantNotFound(msg)
    records: dict[str, list[Any]] = {}
    consents = await services.consent.tenant_consents(conn, tenant)
    records["consents.jsonl"] = consents
    records["tokens.jsonl"] = [
        {
            "consent_id": consent.consent_id,
            "jti": token.jti,
            "audience": token.audience,
            "expires_at": token.expires_at,
            "status": token.status,
            "status_name": provenance_repository.status_name(token.status),
            "status_list_id": token.status_list_id,
            "status_idx": token.status_idx,
        }
        for consent in consents
        for token in await services.consent.tokens_of(conn, consent.consent_id)
    ]
    documents: dict[str, bytes] = {}
    # The signed lists holding the tokens' statuses: what the verifier checks each against.
    for list_id in sorted({token["status_list_id"] for token in records["tokens.jsonl"]}):
        signed = await services.consent.status_list_token(conn, list_id)
        documents[f"statuslists/{list_id}.jwt"] = signed.encode("ascii")
    records["outputs.jsonl"] = await _outputs(uow, tenant)
    decisions, reviews = await _decisions(services, uow, tenant)
    records["decisions.jsonl"] = decisions
    records["reviews.jsonl"] = reviews
    lists = await list_lists(conn, tenant)
    records["hashlists.jsonl"] = lists
    for view in lists:
        _, parts = await export_file(conn, view.name, tenant, "jsonl")
        documents[f"hashlists/{view.name}.jsonl"] = b"".join([part async for part in parts])
    checkpoint = await audit.make_checkpoint(
        conn,
        services.keyring,
        issuer=services.settings.public_issuer,
        note_signer=services.keyring.signer(),
    ) or await audit.latest_checkpoint(conn)
    records["audit.jsonl"] = await _audit(uow, tenant, checkpoint)
    if checkpoint is not None:
        documents["checkpoint.json"] = msgspec.json.encode(checkpoint)
    documents.update(_keys(services))
    files = await asyncio.to_thread(
        _render, tenant, services.settings.public_issuer, records, documents
    )
    uow.record(
        "tenant.exported",
        subject_type="tenant",
        subject_id=tenant,
        payload={
            "manifest_sha256": hashlib.sha256(files[MANIFEST]).hexdigest(),
            "files": len(files),
            "audit_tree_size": checkpoint.tree_size if checkpoint else 0,
        },
    )
    return files


async def _outputs(uow: UnitOfWork, tenant: str) -> list[dict[str, Any]]:
    rows = await provenance_repository.outputs_of_tenant(uow.conn, tenant)
    used = await provenance_repository.consents_of(uow.conn, [row.output_id for row in rows])
    return [
        {
            **{k: v for k, v in msgspec.structs.asdict(row).items() if k != "id"},
            # The token's status lives in tokens.jsonl (this row's is always "unknown").
            "consents": [
                {k: v for k, v in msgspec.structs.asdict(c).items() if k != "status"}
                for c in used[row.output_id]
            ],
        }
        for row in rows
    ]


async def _decisions(
    services: Services, uow: UnitOfWork, tenant: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    conn = uow.conn
    summaries: list[gate_repository.DecisionSummary] = []
    before: int | None = None
    while page := await gate_repository.list_decisions(
        conn, legal_report=None, tenant=tenant, before=before, limit=_PAGE
    ):
        summaries.extend(page)
        before = page[-1].seq
    decisions: list[dict[str, Any]] = []
    reviews: list[dict[str, Any]] = []
    for summary in reversed(summaries):  # oldest first, as every other file
        row = await gate_repository.get_decision(conn, summary.decision_id, tenant=tenant)
        if row is None:  # decisions are never deleted: this only narrows the type
            continue
        case = await services.gate.vault.case(conn, row.decision_id)
        decisions.append(
            {
                **msgspec.structs.asdict(row),
                "legal_report": summary.legal_report,
                # What the tenant's own client sent; the rest of the evidence stays sealed.
                "request": case.request,
                "classifiers": case.evidence.get("classifiers", []),
                "erased_at": case.erased_at,
                "consents": await gate_repository.decision_consents(conn, row.decision_id),
            }
        )
        reviews.extend(
            {"decision_id": row.decision_id, **msgspec.structs.asdict(entry)}
            for entry in await review_repository.history_of(conn, row.decision_id)
        )
    return decisions, reviews


async def _audit(
    uow: UnitOfWork, tenant: str, checkpoint: audit.Checkpoint | None
) -> list[dict[str, Any]]:
    if checkpoint is None:
        return []
    lines = []
    for event in await audit.tenant_events(uow.conn, tenant, up_to=checkpoint.tree_size):
        proof = await audit_tree.inclusion_proof(uow.conn, event.seq - 1, checkpoint.tree_size)
        lines.append({"event": audit.hashed_form(event), "proof": proof})
    return lines


def _keys(services: Services) -> dict[str, bytes]:
    history, _ = key_history_document(services.keyring, issuer=services.settings.public_issuer)
    files = {
        "keys/jwks.json": msgspec.json.encode(services.keyring.jwks()),
        "keys/registry-keys.jws": history.encode("ascii"),
        "keys/c2pa-chain.pem": services.c2pa.chain_pem.encode("ascii"),
    }
    if services.c2pa.anchor_pem is not None:
        files["keys/c2pa-anchor.pem"] = services.c2pa.anchor_pem.encode("ascii")
    return files


def _render(
    tenant: str, issuer: str, records: dict[str, list[Any]], documents: dict[str, bytes]
) -> dict[str, bytes]:
    files = {name: b"".join(_lines(values)) for name, values in records.items()}
    files.update(documents)
    manifest = {
        "format": FORMAT,
        "tenant": tenant,
        "issuer": issuer,
        "created_at": datetime.now(UTC),
        "files": {
            name: {
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
                **({"records": len(records[name])} if name in records else {}),
            }
            for name, data in sorted(files.items())
        },
    }
    files[MANIFEST] = msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n"
    return files


def _lines(values: list[Any]) -> Iterator[bytes]:
    encoder = msgspec.json.Encoder()
    for value in values:
        yield encoder.encode(value) + b"\n"


def write_directory(files: dict[str, bytes], out_dir: Path) -> None:
    """Write the export's files as ``out_dir`` (checked again: ``check_target``).

    They go to a new directory beside it first, renamed into place once complete (a rename
    onto an empty directory replaces it), so a failure half-way (a full disk, a directory
    filled meanwhile) leaves nothing behind. The directory is the owner's alone (mode 0700,
    as ``mkdtemp`` makes it): an export holds personal data. Raises ExportTargetNotEmpty or
    OSError."""
    check_target(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for name, data in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        staging.replace(out_dir)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        raise


async def tar_chunks(files: dict[str, bytes], *, root: str) -> list[bytes]:
    """The export as an uncompressed tar under ``root/``, built in a worker thread, in chunks
    for a streamed response."""
    return await asyncio.to_thread(_tar, files, root)


def _tar(files: dict[str, bytes], root: str) -> list[bytes]:
    buffer = io.BytesIO()
    moment = datetime.now(UTC).timestamp()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size = len(data)
            info.mtime = int(moment)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    data = buffer.getvalue()
    return [data[i : i + _TAR_CHUNK] for i in range(0, len(data), _TAR_CHUNK)]
