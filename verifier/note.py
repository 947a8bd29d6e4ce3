"""C2SP signed notes (c2sp.org/signed-note) and transparency-log checkpoints
(c2sp.org/tlog-checkpoint): the registry's audit-log checkpoints in the format Go's
``golang.org/x/mod/sumdb/note`` and the transparency-dev tools read.

A checkpoint note is::

    <origin>
    <tree size>
    <base64 root hash>

    — <key name> <base64(4-byte key ID || signature)>

The registry signs with its active key, whatever its algorithm: an Ed25519 key (JWS
``EdDSA``) makes signature type 0x01, key ID ``SHA-256(name || 0x0A || 0x01 || 32-byte
key)[:4]`` and a raw RFC 8032 signature over the note text; a P-256 key (``ES256``) makes
signature type 0x02 (ECDSA, as transparency-dev/witness and Sigstore's Rekor use it): key ID
``SHA-256(DER SubjectPublicKeyInfo)[:4]`` and an ASN.1 DER ECDSA signature over the SHA-256 of
the text. The key name is the origin.

A verifier key ("vkey") is the usual text form ``<name>+<key ID hex>+<base64(type || key)>``;
``keys_from_jwk`` derives one from a JWK of the registry's JWKS, so the same published keys
verify the JWS and the note checkpoints.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from keys.errors import KeysError
from keys.jwk import load_public_jwk
from verifier.errors import VerifierError
from verifier.merkle import HASH_SIZE

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from keys.signer import Signer

__all__ = [
    "SIG_ECDSA",
    "SIG_ED25519",
    "Checkpoint",
    "NoteInvalid",
    "NoteKey",
    "checkpoint_text",
    "key_id",
    "keys_from_jwk",
    "note_key",
    "note_text",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "parse_verifier_key",
    "sign_note",
]

SIG_ED25519 = 0x01
SIG_ECDSA = 0x02
_DASH = "\u2014"
_ED25519_SIGNATURE_BYTES = 64
_P256_BYTES = 32
# The spec asks verifiers to accept at least 16 signatures; a checkpoint is a few hundred bytes.
MAX_SIGNATURES = 100
MAX_NOTE_BYTES = 64 * 1024
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_NAME = re.compile(r"[^\s+]+")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class NoteInvalid(VerifierError):
    """A note or verifier key that does not parse, or a note no trusted key signed."""

    code = "note_invalid"


PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class NoteKey:
    """A key that may sign notes, by name and key ID (what a signature line names)."""

    name: str
    key_id: bytes
    public_key: PublicKey

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            if isinstance(self.public_key, Ed25519PublicKey):
                if len(signature) != _ED25519_SIGNATURE_BYTES:
                    return False
                self.public_key.verify(signature, text)
            else:
                self.public_key.verify(signature, text, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True

    def verifier_key(self) -> str:
        """This key as a vkey string: ``name+keyid+base64(type || key)``."""
        kind, encoded = _encoded(self.public_key)
        blob = base64.b64encode(bytes([kind]) + encoded).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{blob}"


def _note_public_key(public_key: object) -> PublicKey:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(
        public_key.curve, ec.SECP256R1
    ):
        return public_key
    raise NoteInvalid("note keys are Ed25519 or ECDSA P-256")


def _encoded(public_key: PublicKey) -> tuple[int, bytes]:
    if isinstance(public_key, Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return SIG_ED25519, raw
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SIG_ECDSA, der


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise NoteInvalid("a key name is non-empty, without spaces or '+'")


def key_id(name: str, public_key: object) -> bytes:
    """The 4-byte key ID of signed-note for this key under this name."""
    _check_name(name)
    kind, encoded = _encoded(_note_public_key(public_key))
    if kind == SIG_ED25519:
        return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + encoded).digest()[:4]
    return hashlib.sha256(encoded).digest()[:4]


def note_key(name: str, public_key: object) -> NoteKey:
    """The note key of an Ed25519 or P-256 public key under ``name``."""
    checked = _note_public_key(public_key)
    return NoteKey(name=name, key_id=key_id(name, checked), public_key=checked)


def parse_verifier_key(text: str) -> NoteKey:
    """A vkey (``name+keyid+base64(type || key)``), its key ID checked against the key."""
    parts = text.strip().split("+", 2)
    if len(parts) != 3:  # noqa: PLR2004 - name, key ID, key
        raise NoteInvalid("a verifier key is name+keyid+key")
    name, hex_id, blob = parts
    _check_name(name)
    try:
        declared = bytes.fromhex(hex_id) if len(hex_id) == 8 else b""  # noqa: PLR2004
        raw = _b64decode(blob)
    except ValueError:
        raise NoteInvalid("a verifier key's key ID or key does not decode") from None
    if len(declared) != 4 or len(raw) < 2:  # noqa: PLR2004
        raise NoteInvalid("a verifier key's key ID or key does not decode")
    kind, encoded = raw[0], raw[1:]
    public_key: PublicKey
    if kind == SIG_ED25519 and len(encoded) == _P256_BYTES:
        public_key = Ed25519PublicKey.from_public_bytes(encoded)
    elif kind == SIG_ECDSA:
        try:
            loaded = serialization.load_der_public_key(encoded)
        except ValueError:
            raise NoteInvalid("a verifier key's ECDSA key is not DER SPKI") from None
        public_key = _note_public_key(loaded)
    else:
        raise NoteInvalid(f"a verifier key of unsupported type {kind} or length")
    key = note_key(name, public_key)
    if key.key_id != declared:
        raise NoteInvalid("a verifier key's key ID does not match its key")
    return key


def keys_from_jwk(jwk: Mapping[str, Any], name: str) -> list[NoteKey]:
    """The note key a JWK (Ed25519 or P-256) stands for under ``name``; none for other keys."""
    try:
        return [note_key(name, load_public_jwk(jwk))]
    except (KeysError, NoteInvalid):
        return []


def _b64decode(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("not canonical base64")
    return raw


def sign_note(text: str, name: str, signer: Signer) -> str:
    """``text`` (ending in a newline) signed by ``signer`` under ``name``: the whole note."""
    _check_text(text)
    _check_name(name)
    key = note_key(name, signer.public_key())
    data = text.encode("utf-8")
    raw = signer.sign(data)
    if isinstance(key.public_key, Ed25519PublicKey):
        signature = raw
    else:  # the JWS form r || s, as the note's ASN.1 DER
        half = len(raw) // 2
        signature = encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )
    encoded = base64.b64encode(key.key_id + signature).decode("ascii")
    return f"{text}\n{_DASH} {name} {encoded}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n") or _CONTROL.search(text):
        raise NoteInvalid("a note's text ends in a newline and has no control characters")


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class OpenedNote:
    text: str
    verified_by: tuple[str, ...]
    """The vkeys of the trusted keys whose signatures verified."""


def _decoded(note: str | bytes) -> str:
    if isinstance(note, str):
        return note
    if len(note) > MAX_NOTE_BYTES:
        raise NoteInvalid("the note is too large")
    try:
        return note.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteInvalid("a note is UTF-8") from None


def _split(note_data: str | bytes) -> tuple[str, list[Signature]]:
    note = _decoded(note_data)
    if len(note.encode("utf-8")) > MAX_NOTE_BYTES:
        raise NoteInvalid("the note is too large")
    if _CONTROL.search(note) or not note.endswith("\n"):
        raise NoteInvalid("a note ends in a newline and has no control characters")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise NoteInvalid("the note has no signatures")
    text, block = note[: cut + 1], note[cut + 2 :]
    lines = block.split("\n")[:-1]
    if not lines or len(lines) > MAX_SIGNATURES:
        raise NoteInvalid("the note has no signatures, or too many")
    signatures = []
    for line in lines:
        prefix, _, rest = line.partition(" ")
        name, _, encoded = rest.partition(" ")
        if prefix != _DASH or not _NAME.fullmatch(name):
            raise NoteInvalid("a signature line is '— <key name> <base64>'")
        try:
            raw = _b64decode(encoded)
        except ValueError:
            raise NoteInvalid("a signature is not base64") from None
        if len(raw) < 5:  # noqa: PLR2004 - key ID and at least one byte
            raise NoteInvalid("a signature is too short")
        signatures.append(Signature(name=name, key_id=raw[:4], signature=raw[4:]))
    return text, signatures


def note_text(note: str | bytes) -> str:
    """The text of a well-formed note, its signatures NOT verified (see ``open_note``)."""
    return _split(note)[0]


def open_note(note: str | bytes, known: Iterable[NoteKey]) -> OpenedNote:
    """The text of ``note`` if a key of ``known`` signed it; raises ``NoteInvalid``.

    As signed-note says: signatures by unknown keys (name and key ID not both known) are
    ignored; a known key's signature that does not verify rejects the note; so does a note
    that no known key signed.
    """
    text, signatures = _split(note)
    by_id: dict[tuple[str, bytes], list[NoteKey]] = {}
    for key in known:
        by_id.setdefault((key.name, key.key_id), []).append(key)
    data = text.encode("utf-8")
    verified: list[str] = []
    for sig in signatures:
        candidates = by_id.get((sig.name, sig.key_id))
        if not candidates:
            continue
        signer = next((k for k in candidates if k.verify(data, sig.signature)), None)
        if signer is None:
            raise NoteInvalid(f"the signature of key {sig.name}+{sig.key_id.hex()} is invalid")
        verified.append(signer.verifier_key())
    if not verified:
        raise NoteInvalid("no trusted key signed the note")
    return OpenedNote(text=text, verified_by=tuple(dict.fromkeys(verified)))


@dataclass(frozen=True)
class Checkpoint:
    """The body of a tlog checkpoint."""

    origin: str
    tree_size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()


def checkpoint_text(origin: str, tree_size: int, root_hash: bytes) -> str:
    if not origin or "\n" in origin or _CONTROL.search(origin):
        raise NoteInvalid("an origin is one non-empty line")
    if tree_size < 0 or len(root_hash) != HASH_SIZE:
        raise NoteInvalid("a checkpoint has a size and a 32-byte root hash")
    return f"{origin}\n{tree_size}\n{base64.b64encode(root_hash).decode('ascii')}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """The checkpoint in a note's text (not its signatures: see ``open_checkpoint``)."""
    lines = text.split("\n")
    if lines[-1] != "" or len(lines) < 4 or any(not line for line in lines[:-1]):  # noqa: PLR2004
        raise NoteInvalid("a checkpoint is at least three non-empty lines")
    origin, size, encoded = lines[0], lines[1], lines[2]
    if not _DECIMAL.fullmatch(size):
        raise NoteInvalid("a checkpoint's tree size is a decimal number without leading zeros")
    try:
        root_hash = _b64decode(encoded)
    except ValueError:
        raise NoteInvalid("a checkpoint's root hash is not base64") from None
    if len(root_hash) != HASH_SIZE:
        raise NoteInvalid("a checkpoint's root hash is not 32 bytes")
    return Checkpoint(
        origin=origin,
        tree_size=int(size),
        root_hash=root_hash,
        extensions=tuple(lines[3:-1]),
    )


def open_checkpoint(
    note: str | bytes, known: Iterable[NoteKey], *, origin: str | None = None
) -> Checkpoint:
    """A checkpoint note's body, once a known key's signature verified (and its origin is
    ``origin``, when given)."""
    opened = open_note(note, known)
    checkpoint = parse_checkpoint(opened.text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteInvalid(f"the checkpoint is of origin {checkpoint.origin!r}, not {origin!r}")
    return checkpoint
