"""``audit inclusion`` and ``audit consistency``: the registry's audit log checked offline, as
a monitor does.

Both take checkpoints as C2SP signed notes (``GET /v1/audit/checkpoint.note``, kept by the
monitor) and a proof as the registry serves it (``GET /v1/audit/proofs/...``), and trust only
the keys given: ``--key VKEY|FILE`` (a note verifier key ``name+keyid+base64``, or a file of
them, one a line; repeatable), or the registry's published keys, ``--jwks`` or ``--keys``
(the key history: every key that signed checkpoints, so a checkpoint signed before key
rotations still verifies), whose Ed25519 and P-256 keys are taken under the checkpoint's
origin as key name.

- ``inclusion --checkpoint NOTE --proof PROOF.json --leaf HASH``: the event whose stored hash
  is ``HASH`` (hex, as ``/v1/audit/events`` lists it) is leaf ``leaf_index`` of the tree the
  checkpoint signs (``--index N`` pins the index you expect: event ``seq = N + 1``).
- ``consistency --old NOTE --new NOTE --proof PROOF.json``: the newer checkpoint's tree
  extends the older one's: no event under the old checkpoint was changed or removed.

Exit 0 ``verified``, 1 ``invalid`` (with reasons: ``note_invalid``, ``origin``, ``tree_size``,
``leaf_index``, ``leaf``, ``proof_malformed``, ``inclusion``, ``consistency``), 64 for a usage
error or an unreadable input. ``--json`` prints ``{"result", "reasons", "detail", ...}``.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import msgspec

from verifier import merkle, note
from verifier.cli.common import (
    EXIT_INVALID,
    EXIT_VERIFIED,
    MAX_DOCUMENT_BYTES,
    UsageError,
    safe,
)
from verifier.cli.history import add_key_arguments, load_key_history
from verifier.cli.sources import load_jwks, read_file, read_source
from verifier.clock import DEFAULT_LEEWAY_SECONDS

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable

__all__ = ["add_audit_parser", "audit_command"]

_VKEY = re.compile(r"[^\s+]+\+[0-9a-fA-F]{8}\+[A-Za-z0-9+/=]+")
_HEX_HASH = re.compile(r"[0-9a-fA-F]{64}")
_MAX_NOTE_BYTES = note.MAX_NOTE_BYTES


class CheckpointView(msgspec.Struct, frozen=True, kw_only=True):
    origin: str
    tree_size: int
    root_hash: str
    """Hex, as the registry's JSON has it (the note has it in base64)."""


class AuditOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """``--json`` of ``audit``: ``verified`` or ``invalid``, every reason, the checkpoints."""

    result: str
    reasons: tuple[str, ...]
    detail: str | None = None
    checkpoint: CheckpointView | None = None
    old_checkpoint: CheckpointView | None = None
    leaf_index: int | None = None


class _Invalid(Exception):
    """A verdict of ``invalid``, with its reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def add_audit_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``audit inclusion`` and ``audit consistency`` to the subcommands."""
    audit: argparse.ArgumentParser = commands.add_parser(
        "audit", help="check an audit-log inclusion or consistency proof against checkpoints"
    )
    proofs = audit.add_subparsers(dest="audit_command", required=True)
    inclusion = proofs.add_parser("inclusion", help="one event is in a checkpoint's tree")
    inclusion.add_argument(
        "--checkpoint", required=True, metavar="NOTE", help="the signed checkpoint note"
    )
    inclusion.add_argument(
        "--proof", required=True, metavar="FILE|URL", help="the inclusion proof (JSON)"
    )
    inclusion.add_argument(
        "--leaf", required=True, metavar="HASH", help="the event's stored hash (64 hex digits)"
    )
    inclusion.add_argument(
        "--index", type=int, metavar="N", help="the leaf index it must be at (event seq - 1)"
    )
    consistency = proofs.add_parser(
        "consistency", help="a newer checkpoint's tree extends an older one's"
    )
    consistency.add_argument(
        "--old", required=True, metavar="NOTE", help="the older checkpoint note (kept)"
    )
    consistency.add_argument(
        "--new", required=True, metavar="NOTE", help="the newer checkpoint note"
    )
    consistency.add_argument(
        "--proof", required=True, metavar="FILE|URL", help="the consistency proof (JSON)"
    )
    for parser in (inclusion, consistency):
        parser.add_argument(
            "--key",
            action="append",
            default=[],
            metavar="VKEY|FILE",
            help="a trusted note verifier key, or a file of them (repeatable)",
        )
        add_key_arguments(parser)
        parser.add_argument(
            "--origin", metavar="ORIGIN", help="the origin the checkpoints must have"
        )
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return audit


def audit_command(args: argparse.Namespace, out: TextIO) -> int:
    given = _given_keys(args.key)
    if args.audit_command == "inclusion":
        outcome = _inclusion(args, given)
    else:
        outcome = _consistency(args, given)
    if args.json:
        out.write(msgspec.json.encode(outcome).decode("utf-8") + "\n")
    else:
        out.write("\n".join(_lines(outcome)) + "\n")
    return EXIT_VERIFIED if outcome.result == "verified" else EXIT_INVALID


def _given_keys(values: Iterable[str]) -> list[note.NoteKey]:
    found: list[note.NoteKey] = []
    for value in values:
        if _VKEY.fullmatch(value):
            lines = [value]
        else:
            text = read_file(Path(value), MAX_DOCUMENT_BYTES).decode("utf-8", "replace")
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if not lines:
                raise UsageError(f"{value} holds no note verifier key")
        for line in lines:
            try:
                found.append(note.parse_verifier_key(line))
            except note.NoteInvalid as exc:
                raise UsageError(f"--key {value}: {exc.message}") from None
    return found


def _published_keys(args: argparse.Namespace, name: str) -> list[note.NoteKey]:
    """The JWKS's or key history's checkpoint keys, as note keys named ``name``."""
    jwks: list[Any] = []
    if getattr(args, "keys", None):
        history = load_key_history(args.keys, leeway_seconds=DEFAULT_LEEWAY_SECONDS)
        jwks = [entry.jwk for entry in history.keys if "checkpoints" in entry.signs]
    elif args.jwks:
        jwks = list(load_jwks(args.jwks)["keys"])
    found: list[note.NoteKey] = []
    for jwk in jwks:
        if isinstance(jwk, dict):
            found.extend(note.keys_from_jwk(jwk, name))
    return found


def _read_note(source: str) -> bytes:
    data = read_source(source)
    if len(data) > _MAX_NOTE_BYTES:
        raise UsageError(f"{source} is larger than a checkpoint note may be")
    return data


def _open(data: bytes, args: argparse.Namespace, given: list[note.NoteKey]) -> note.Checkpoint:
    """The checkpoint a trusted key signed, or _Invalid."""
    try:
        unverified = note.parse_checkpoint(note.note_text(data))
        trusted = given + _published_keys(args, unverified.origin)
        if not trusted:
            raise UsageError("no key to trust: give --key, --jwks or --keys")
        checkpoint = note.open_checkpoint(data, trusted)
    except note.NoteInvalid as exc:
        raise _Invalid("note_invalid", exc.message) from None
    if args.origin is not None and checkpoint.origin != args.origin:
        detail = f"the checkpoint is of origin {checkpoint.origin!r}, not {args.origin!r}"
        raise _Invalid("origin", detail)
    return checkpoint


def _view(checkpoint: note.Checkpoint) -> CheckpointView:
    return CheckpointView(
        origin=checkpoint.origin,
        tree_size=checkpoint.tree_size,
        root_hash=checkpoint.root_hash.hex(),
    )


def _proof(source: str) -> dict[str, Any]:
    try:
        document = json.loads(read_source(source))
    except (ValueError, RecursionError):
        raise UsageError(f"{source} is not a JSON proof") from None
    if not isinstance(document, dict):
        raise UsageError(f"{source} is not a JSON object")
    return document


def _count(document: dict[str, Any], name: str) -> int:
    value = document.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Invalid("proof_malformed", f"the proof's {name} is not a whole number")
    return value


def _hashes(document: dict[str, Any], name: str) -> list[bytes]:
    value = document.get(name)
    if not isinstance(value, list) or len(value) > merkle.MAX_PROOF_HASHES:
        raise _Invalid("proof_malformed", f"the proof's {name} is not a list of hashes")
    hashes = []
    for item in value:
        if not isinstance(item, str) or not _HEX_HASH.fullmatch(item):
            raise _Invalid("proof_malformed", f"the proof's {name} holds a non-hash")
        hashes.append(bytes.fromhex(item))
    return hashes


def _leaf(value: str) -> bytes:
    text = value.strip()
    if _HEX_HASH.fullmatch(text):
        return bytes.fromhex(text)
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != merkle.HASH_SIZE:
        raise UsageError("--leaf is the event's hash: 64 hex digits")
    return raw


class _Seen:
    """What a check established before it stopped: reported either way."""

    def __init__(self) -> None:
        self.checkpoint: CheckpointView | None = None
        self.old: CheckpointView | None = None
        self.index: int | None = None

    def outcome(self, verdict: _Invalid | None = None) -> AuditOutcome:
        return AuditOutcome(
            result="verified" if verdict is None else "invalid",
            reasons=() if verdict is None else (verdict.reason,),
            detail=None if verdict is None else verdict.detail,
            checkpoint=self.checkpoint,
            old_checkpoint=self.old,
            leaf_index=self.index,
        )


def _inclusion(args: argparse.Namespace, given: list[note.NoteKey]) -> AuditOutcome:
    leaf = merkle.leaf_hash(_leaf(args.leaf))
    document = _proof(args.proof)
    data = _read_note(args.checkpoint)
    seen = _Seen()
    try:
        _check_inclusion(args, given, data=data, document=document, leaf=leaf, seen=seen)
    except _Invalid as verdict:
        return seen.outcome(verdict)
    return seen.outcome()


def _check_inclusion(
    args: argparse.Namespace,
    given: list[note.NoteKey],
    *,
    data: bytes,
    document: dict[str, Any],
    leaf: bytes,
    seen: _Seen,
) -> None:
    checkpoint = _open(data, args, given)
    seen.checkpoint = _view(checkpoint)
    index = seen.index = _count(document, "leaf_index")
    size = _count(document, "tree_size")
    path = _hashes(document, "audit_path")
    if size != checkpoint.tree_size:
        detail = f"the proof is for tree size {size}, the checkpoint for {checkpoint.tree_size}"
        raise _Invalid("tree_size", detail)
    if args.index is not None and index != args.index:
        raise _Invalid("leaf_index", f"the proof is for leaf {index}, not {args.index}")
    claimed = document.get("leaf_hash")
    if claimed is not None and claimed != leaf.hex():
        raise _Invalid("leaf", "the proof is for another leaf than --leaf")
    try:
        merkle.verify_inclusion(index, size, leaf, path, checkpoint.root_hash)
    except merkle.MerkleProofInvalid as exc:
        raise _Invalid("inclusion", exc.message) from None


def _consistency(args: argparse.Namespace, given: list[note.NoteKey]) -> AuditOutcome:
    document = _proof(args.proof)
    old_data, new_data = _read_note(args.old), _read_note(args.new)
    seen = _Seen()
    try:
        _check_consistency(
            args, given, old_data=old_data, new_data=new_data, document=document, seen=seen
        )
    except _Invalid as verdict:
        return seen.outcome(verdict)
    return seen.outcome()


def _check_consistency(
    args: argparse.Namespace,
    given: list[note.NoteKey],
    *,
    old_data: bytes,
    new_data: bytes,
    document: dict[str, Any],
    seen: _Seen,
) -> None:
    old = _open(old_data, args, given)
    seen.old = _view(old)
    new = _open(new_data, args, given)
    seen.checkpoint = _view(new)
    if old.origin != new.origin:
        raise _Invalid("origin", f"the checkpoints are of {old.origin!r} and {new.origin!r}")
    first, second = _count(document, "from"), _count(document, "to")
    path = _hashes(document, "path")
    if (first, second) != (old.tree_size, new.tree_size):
        detail = (
            f"the proof is from size {first} to {second}, the checkpoints are of"
            f" {old.tree_size} and {new.tree_size}"
        )
        raise _Invalid("tree_size", detail)
    try:
        merkle.verify_consistency(first, second, old.root_hash, new.root_hash, path)
    except merkle.MerkleProofInvalid as exc:
        raise _Invalid("consistency", exc.message) from None


def _lines(outcome: AuditOutcome) -> list[str]:
    lines = [outcome.result]
    if outcome.detail:
        lines.append(f"  {', '.join(outcome.reasons)}: {safe(outcome.detail)}")
    if outcome.old_checkpoint:
        cp = outcome.old_checkpoint
        lines.append(f"  old checkpoint: {safe(cp.origin)} size {cp.tree_size} root {cp.root_hash}")
    if outcome.checkpoint:
        cp = outcome.checkpoint
        label = "new checkpoint" if outcome.old_checkpoint else "checkpoint"
        lines.append(f"  {label}: {safe(cp.origin)} size {cp.tree_size} root {cp.root_hash}")
    if outcome.result == "verified" and outcome.leaf_index is not None:
        lines.append(f"  event {outcome.leaf_index + 1} (leaf {outcome.leaf_index}) is in the log")
    elif outcome.result == "verified":
        lines.append("  the new checkpoint's log extends the old one's")
    return lines
