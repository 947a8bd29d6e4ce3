"""Offline verification of a tenant's export (``registry export``, docs/export.md).

Only the export's own contents are used: ``manifest.json`` names every file with its SHA-256;
``keys/registry-keys.jws``, the signed key history, gives the keys that signed the receipts,
assertions, status lists and the audit checkpoint in it, each checked against the key's
signing period; every audit event's hash is recomputed from its fields and proved by its
inclusion proof to lie under the signed checkpoint's Merkle root.

What this proves is that the files are whole and were signed by the keys of the history they
carry. That the history is the registry's own is for the reader to pin: compare it (or its
active key) with what the registry publishes at ``/.well-known/registry-keys.json``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec

from verifier import merkle
from verifier.errors import VerifierError
from verifier.key_history import (
    KeyHistoryError,
    SignedArtifactError,
    verify_key_history,
    verify_signed,
)
from verifier.statuslist import StatusListError, verify_status_list_token

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import datetime

    from verifier.key_history import KeyHistory
    from verifier.statuslist import SignedStatusList

__all__ = ["EXPORT_FORMAT", "ExportProblem", "ExportReport", "verify_export"]

EXPORT_FORMAT: Final = "registry-export/1"
MANIFEST: Final = "manifest.json"
KEY_HISTORY: Final = "keys/registry-keys.jws"
CHECKPOINT: Final = "checkpoint.json"
# The fields of an audit event that its hash covers (``registry.core.audit.Entry``).
_HASHED: Final = (
    "seq",
    "occurred_at",
    "actor",
    "tenant",
    "action",
    "subject_type",
    "subject_id",
    "payload",
)
_LIST_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HEX64: Final = re.compile(r"[0-9a-f]{64}")


class ExportProblem(msgspec.Struct, frozen=True, kw_only=True):
    """One thing that does not hold: in ``file`` (at 1-based ``line`` of a JSON-lines file)."""

    file: str
    code: str
    detail: str
    line: int | None = None


class ExportReport(msgspec.Struct, frozen=True, kw_only=True):
    result: Literal["verified", "invalid"]
    tenant: str | None
    checked: dict[str, int]
    """How many of each were verified: files, receipts, assertions, token_statuses,
    audit_events."""
    problems: list[ExportProblem]


class _Bad(VerifierError):
    """A record that does not verify: noted against its file and line, then the next."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class _Check:
    """The state of one verification: the problems found and what was counted."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[ExportProblem] = []
        self.checked: dict[str, int] = {}
        self.intact: dict[str, bytes] = {}
        """The files whose SHA-256 matches the manifest, read once."""

    def bad(self, file: str, code: str, detail: str, line: int | None = None) -> None:
        self.problems.append(ExportProblem(file=file, code=code, detail=detail, line=line))

    def count(self, what: str) -> None:
        self.checked[what] = self.checked.get(what, 0) + 1

    def lines(self, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
        """The JSON objects of an intact JSON-lines file, a bad line noted and skipped."""
        for number, raw in enumerate(self.intact.get(name, b"").splitlines(), start=1):
            try:
                value = json.loads(raw)
            except ValueError:
                self.bad(name, "malformed", "not a JSON line", number)
                continue
            if not isinstance(value, dict):
                self.bad(name, "malformed", "not a JSON object", number)
                continue
            yield number, value


def verify_export(root: Path, *, now: datetime, leeway_seconds: int) -> ExportReport:
    """Check the export in directory ``root``; never raises for what the files hold."""
    check = _Check(root)
    tenant = _files(check)
    if tenant is not None and KEY_HISTORY in check.intact:
        try:
            history = verify_key_history(
                check.intact[KEY_HISTORY].decode("ascii", "replace").strip(),
                now=now,
                leeway_seconds=leeway_seconds,
            )
        except KeyHistoryError as exc:
            check.bad(KEY_HISTORY, exc.code, exc.message)
        else:
            _receipts(check, history, tenant, leeway_seconds)
            _assertions(check, history, leeway_seconds)
            _token_statuses(check, history, leeway_seconds)
            _audit(check, history, leeway_seconds)
    elif tenant is not None:
        check.bad(KEY_HISTORY, "missing", "the export has no intact key history")
    return ExportReport(
        result="invalid" if check.problems else "verified",
        tenant=tenant,
        checked=check.checked,
        problems=check.problems,
    )


def _files(check: _Check) -> str | None:
    """Check every file against the manifest; the tenant it names, None if it is unusable."""
    found = _manifest(check)
    if found is None:
        return None
    tenant, files = found
    for name, entry in sorted(files.items()):
        _file(check, name, entry)
    for path in sorted(check.root.rglob("*")):
        name = path.relative_to(check.root).as_posix()
        if path.is_file() and name != MANIFEST and name not in files:
            check.bad(name, "unlisted", "in the export, not in the manifest")
    return tenant


def _manifest(check: _Check) -> tuple[str, dict[str, Any]] | None:
    try:
        manifest = json.loads((check.root / MANIFEST).read_bytes())
    except OSError as exc:
        check.bad(MANIFEST, "missing", f"cannot read it: {exc.strerror}")
        return None
    except ValueError:
        check.bad(MANIFEST, "malformed", "not JSON")
        return None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    tenant = manifest.get("tenant") if isinstance(manifest, dict) else None
    if manifest.get("format") != EXPORT_FORMAT or not isinstance(files, dict):
        check.bad(MANIFEST, "malformed", f"not a manifest of format {EXPORT_FORMAT}")
        return None
    if not isinstance(tenant, str):
        check.bad(MANIFEST, "malformed", "the manifest names no tenant")
        return None
    return tenant, files


def _file(check: _Check, name: str, entry: object) -> None:
    path = _inside(check.root, name)
    expected = entry.get("sha256") if isinstance(entry, dict) else None
    if path is None or not isinstance(expected, str) or not _HEX64.fullmatch(expected):
        check.bad(MANIFEST, "malformed", f"the entry for {name[:200]!r} is not valid")
        return
    try:
        data = path.read_bytes()
    except OSError:
        check.bad(name, "missing", "listed in the manifest, not in the export")
        return
    if hashlib.sha256(data).hexdigest() != expected:
        check.bad(name, "sha256_mismatch", "its SHA-256 is not the manifest's")
        return
    check.intact[name] = data
    check.count("files")


def _inside(root: Path, name: object) -> Path | None:
    """``root / name`` for a relative POSIX name that stays under ``root``."""
    if not isinstance(name, str) or not name or "\\" in name:
        return None
    pure = PurePosixPath(name)
    if pure.is_absolute() or any(part in {"", ".", ".."} for part in pure.parts):
        return None
    return root.joinpath(*pure.parts)


def _signed(history: KeyHistory, token: object, typ: str, leeway_seconds: int) -> dict[str, Any]:
    if not isinstance(token, str):
        raise _Bad("malformed", f"no {typ} where one belongs")
    try:
        return verify_signed(token, history, typ=typ, leeway_seconds=leeway_seconds).claims
    except SignedArtifactError as exc:
        raise _Bad(exc.code, exc.message) from None


def _each(check: _Check, name: str, what: str, verify: Callable[[dict[str, Any]], bool]) -> None:
    """Run ``verify`` on every line of ``name``, counting ``what`` when it returns True and
    noting its ``_Bad`` against the line."""
    for number, record in check.lines(name):
        try:
            counted = verify(record)
        except _Bad as exc:
            check.bad(name, exc.code, exc.detail, number)
        else:
            if counted:
                check.count(what)


def _receipts(check: _Check, history: KeyHistory, tenant: str, leeway_seconds: int) -> None:
    def verify(consent: dict[str, Any]) -> bool:
        if consent.get("receipt") is None:  # erased: the receipt went with the personal data
            return False
        claims = _signed(history, consent["receipt"], "consent-receipt+jwt", leeway_seconds)
        controller = claims.get("pii_controller")
        if claims.get("consent_id") != consent.get("consent_id"):
            raise _Bad("receipt_mismatch", "the receipt is for another consent")
        if not isinstance(controller, dict) or controller.get("tenant") != tenant:
            raise _Bad("receipt_mismatch", "the receipt is for another tenant")
        return True

    _each(check, "consents.jsonl", "receipts", verify)


def _assertions(check: _Check, history: KeyHistory, leeway_seconds: int) -> None:
    def verify(output: dict[str, Any]) -> bool:
        claims = _signed(history, output.get("assertion"), "provenance+jwt", leeway_seconds)
        if (claims.get("jti"), claims.get("sha256")) != (
            output.get("output_id"),
            output.get("sha256"),
        ):
            raise _Bad("assertion_mismatch", "the assertion is for another output")
        return True

    _each(check, "outputs.jsonl", "assertions", verify)


def _token_statuses(check: _Check, history: KeyHistory, leeway_seconds: int) -> None:
    name = "tokens.jsonl"
    lists: dict[str, SignedStatusList | None] = {}
    for number, token in check.lines(name):
        list_id, idx, status = (token.get(k) for k in ("status_list_id", "status_idx", "status"))
        if not isinstance(list_id, str) or not _LIST_ID.fullmatch(list_id):
            check.bad(name, "malformed", "no valid status_list_id", number)
            continue
        if list_id not in lists:
            lists[list_id] = _status_list(check, history, list_id, leeway_seconds)
        signed = lists[list_id]
        if signed is None:
            check.bad(name, "status_list_missing", f"no verified list {list_id}", number)
            continue
        try:
            listed = signed.status_list.get(idx) if isinstance(idx, int) else None
        except StatusListError:
            listed = None
        if listed is None or listed != status:
            check.bad(
                name, "token_status", f"status {status!r}, the signed list says {listed}", number
            )
            continue
        check.count("token_statuses")


def _status_list(
    check: _Check, history: KeyHistory, list_id: str, leeway_seconds: int
) -> SignedStatusList | None:
    file = f"statuslists/{list_id}.jwt"
    if file not in check.intact:
        return None
    try:
        return verify_status_list_token(
            check.intact[file].decode("ascii", "replace").strip(),
            jwks=history,
            leeway_seconds=leeway_seconds,
        )
    except StatusListError as exc:
        check.bad(file, exc.code, exc.message)
        return None


def _audit(check: _Check, history: KeyHistory, leeway_seconds: int) -> None:
    name = "audit.jsonl"
    events = list(check.lines(name))
    if not events:
        return
    try:
        checkpoint = json.loads(check.intact[CHECKPOINT])
        claims = _signed(
            history, checkpoint.get("checkpoint"), "audit-checkpoint+jwt", leeway_seconds
        )
        size, root = claims.get("tree_size"), bytes.fromhex(str(claims.get("root")))
    except KeyError:
        check.bad(CHECKPOINT, "missing", "audit events but no intact checkpoint")
        return
    except (ValueError, AttributeError):
        check.bad(CHECKPOINT, "malformed", "not a checkpoint")
        return
    except _Bad as exc:
        check.bad(CHECKPOINT, exc.code, exc.detail)
        return
    for number, line in events:
        try:
            _event(line, size, root)
        except _Bad as exc:
            check.bad(name, exc.code, exc.detail, number)
        else:
            check.count("audit_events")


def _event(line: dict[str, Any], size: object, root: bytes) -> None:
    event, proof = line.get("event"), line.get("proof")
    if not isinstance(event, dict) or not isinstance(proof, dict):
        raise _Bad("malformed", "a line holds an event and its proof")
    try:
        canonical = msgspec.json.encode({k: event[k] for k in _HASHED}, order="sorted")
        prev, stored = bytes.fromhex(event["prev_hash"]), bytes.fromhex(event["hash"])
        path = [bytes.fromhex(h) for h in proof["audit_path"]]
        index = proof["leaf_index"]
    except (KeyError, TypeError, ValueError):
        raise _Bad("malformed", "the event or its proof lacks a field") from None
    if hashlib.sha256(prev + canonical).digest() != stored:
        raise _Bad("event_hash", f"event {event.get('seq')}: its fields do not give its hash")
    if proof.get("tree_size") != size or index != event.get("seq", 0) - 1:
        raise _Bad("inclusion", "the proof is not for this event in the checkpoint's tree")
    try:
        merkle.verify_inclusion(index, int(str(size)), merkle.leaf_hash(stored), path, root)
    except (merkle.MerkleProofInvalid, ValueError) as exc:
        raise _Bad("inclusion", f"event {event.get('seq')}: {exc}") from None
