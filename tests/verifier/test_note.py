"""``verifier.note``: C2SP signed notes and tlog checkpoints.

Known answers from Go's ``golang.org/x/mod/sumdb/note`` tests (Ed25519 is deterministic, so
signing the same text with the same key gives the same line) and the C2SP tlog-checkpoint
example; an ECDSA P-256 note is checked with ``cryptography`` directly.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys import LocalSigner
from verifier import note

PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXg"
    "KvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwn"
    "WLox33WWd1RvMc+QQ=\n"
)
SOFA = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
    "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)


@pytest.fixture(scope="module")
def peter():
    seed = base64.b64decode(PETER_SKEY.split("+", 4)[4])[1:]  # PRIVATE+KEY+name+id+key
    return LocalSigner(Ed25519PrivateKey.from_private_bytes(seed), "EdDSA")


def test_signing_gives_the_known_signature_line(peter):
    assert note.sign_note(TEXT, "PeterNeumann", peter) == TEXT + "\n" + PETER_SIG


def test_verifier_keys_round_trip_with_the_known_key_id(peter):
    key = note.parse_verifier_key(PETER_VKEY)
    assert key.key_id.hex() == "c74f20a3"
    assert key.verifier_key() == PETER_VKEY
    assert note.note_key("PeterNeumann", peter.public_key()).verifier_key() == PETER_VKEY
    assert note.parse_verifier_key(ENOCH_VKEY).key_id.hex() == "af0cfe78"


def test_mangled_verifier_keys_are_refused():
    bad = [
        PETER_VKEY[:-1],
        PETER_VKEY.replace("c74f20a3", "c74f20a4"),
        PETER_VKEY.replace("PeterNeumann", "PeterNeuman"),
        # Wrong key length and an unknown algorithm, with adjusted key IDs (Go's own cases).
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "",
    ]
    for vkey in bad:
        with pytest.raises(note.NoteInvalid):
            note.parse_verifier_key(vkey)


def test_open_verifies_known_and_ignores_unknown_signatures():
    peter = note.parse_verifier_key(PETER_VKEY)
    enoch = note.parse_verifier_key(ENOCH_VKEY)
    both = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    opened = note.open_note(both, [peter])
    assert opened.text == TEXT
    assert opened.verified_by == (PETER_VKEY,)
    assert note.open_note(both, [peter, enoch]).verified_by == (PETER_VKEY, ENOCH_VKEY)
    with pytest.raises(note.NoteInvalid, match="no trusted key"):
        note.open_note(both, [])
    # A known key's bad signature rejects the whole note, even beside a good one.
    forged = TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:] + ENOCH_SIG
    with pytest.raises(note.NoteInvalid, match="invalid"):
        note.open_note(forged, [peter, enoch])
    # Another text under the same signature.
    with pytest.raises(note.NoteInvalid):
        note.open_note(TEXT.replace("answer", "problem") + "\n" + PETER_SIG, [peter])


def test_malformed_notes_are_refused():
    peter = note.parse_verifier_key(PETER_VKEY)
    bad = [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"),
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG * 101,
        (TEXT + "\n" + PETER_SIG).encode("utf-8") + b"\xff",
    ]
    for value in bad:
        with pytest.raises(note.NoteInvalid):
            note.open_note(value, [peter])


def test_the_c2sp_example_checkpoint_parses():
    text = note.note_text(SOFA)
    checkpoint = note.parse_checkpoint(text)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.tree_size == 20852163
    assert base64.b64encode(checkpoint.root_hash) == b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    assert note.checkpoint_text(checkpoint.origin, 20852163, checkpoint.root_hash) == text
    # We do not hold that log's key: its signature is ignored, and nothing verifies.
    with pytest.raises(note.NoteInvalid, match="no trusted key"):
        note.open_checkpoint(SOFA, [note.parse_verifier_key(PETER_VKEY)])


@pytest.mark.parametrize(
    "text",
    [
        "origin\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "origin\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "origin\n1\nAAAA\n",
        "origin\n1\n",
        "\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "origin\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n",
    ],
)
def test_malformed_checkpoints_are_refused(text):
    with pytest.raises(note.NoteInvalid):
        note.parse_checkpoint(text)


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_checkpoints_signed_by_our_key_types(alg):
    signer = LocalSigner.generate(alg)
    root_hash = hashlib.sha256(b"root").digest()
    origin = "registry.example/audit"
    signed = note.sign_note(note.checkpoint_text(origin, 42, root_hash), origin, signer)
    key = note.note_key(origin, signer.public_key())
    assert note.parse_verifier_key(key.verifier_key()) == key
    checkpoint = note.open_checkpoint(signed, [key], origin=origin)
    assert (checkpoint.tree_size, checkpoint.root_hash) == (42, root_hash)
    with pytest.raises(note.NoteInvalid, match="origin"):
        note.open_checkpoint(signed, [key], origin="elsewhere/audit")
    # The same key under another name is another note key: its signature is not ours.
    with pytest.raises(note.NoteInvalid):
        note.open_checkpoint(signed, [note.note_key("elsewhere/audit", signer.public_key())])
    # The JWK the registry publishes gives the same note key.
    assert note.keys_from_jwk(signer.public_jwk(), origin) == [key]
    line = signed.splitlines()[-1]
    raw = base64.b64decode(line.split(" ")[2])
    public = signer.public_key()
    if alg == "ES256":
        # Signature type 0x02: key ID over the DER SPKI, an ASN.1 DER ECDSA-SHA256 signature.
        assert isinstance(public, ec.EllipticCurvePublicKey)
        spki = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert raw[:4] == hashlib.sha256(spki).digest()[:4]
        public.verify(raw[4:], note.note_text(signed).encode(), ec.ECDSA(hashes.SHA256()))
        assert base64.b64decode(key.verifier_key().split("+", 2)[2]) == b"\x02" + spki
    else:
        pub = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert raw[:4] == hashlib.sha256(origin.encode() + b"\n\x01" + pub).digest()[:4]
        assert len(raw) == 4 + 64
