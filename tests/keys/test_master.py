"""MasterKey: accepted encodings, file creation, AES-GCM sealing, and no bytes in repr."""

from __future__ import annotations

import base64
import pickle
import stat
import threading

import pytest

from keys import KeyDecryptionFailed, MasterKey, MasterKeyInvalid

RAW = bytes(range(32))


@pytest.mark.parametrize(
    "text",
    [
        base64.urlsafe_b64encode(RAW).rstrip(b"=").decode(),
        base64.urlsafe_b64encode(RAW).decode(),
        base64.b64encode(RAW).decode(),
        RAW.hex(),
        RAW.hex().upper(),
        f"  {RAW.hex()}\n",
    ],
)
def test_from_text_accepts_the_documented_forms(text):
    assert MasterKey.from_text(text).to_text() == MasterKey(RAW).to_text()


def test_base64_alphabets_decode_alike():
    raw = b"\xfb\xff" * 16
    urlsafe = base64.urlsafe_b64encode(raw).decode()
    standard = base64.b64encode(raw).decode()
    assert "-" in urlsafe
    assert "+" in standard
    assert MasterKey.from_text(urlsafe).to_text() == MasterKey.from_text(standard).to_text()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not-a-key",
        base64.b64encode(RAW[:31]).decode(),
        base64.b64encode(RAW + b"x").decode(),
        RAW.hex()[:-1],
        RAW.hex() + "0",
        "g" * 64,
        base64.b64encode(RAW).decode()[:20] + "=" + base64.b64encode(RAW).decode()[21:],
        base64.b64encode(RAW).decode()[:-2] + "==",
        "secret-value-" * 5,
    ],
)
def test_from_text_rejects_other_input_without_echo(text):
    with pytest.raises(MasterKeyInvalid) as info:
        MasterKey.from_text(text)
    assert info.value.code == "master_key_invalid"
    assert "32 bytes" in str(info.value)
    if text:
        assert text not in str(info.value)


def test_wrong_length_bytes_are_rejected():
    with pytest.raises(MasterKeyInvalid):
        MasterKey(RAW[:16])


def test_generate_is_random():
    assert MasterKey.generate().to_text() != MasterKey.generate().to_text()


def test_load_or_create_creates_a_private_file_once(tmp_path):
    path = tmp_path / "secrets" / "master.key"
    key, created = MasterKey.load_or_create(path)
    assert created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == key.to_text()
    again, created_again = MasterKey.load_or_create(path)
    assert not created_again
    assert again.to_text() == key.to_text()
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]


def test_load_or_create_is_safe_under_concurrent_creation(tmp_path):
    path = tmp_path / "master.key"
    results = []
    barrier = threading.Barrier(8)

    def create():
        barrier.wait()
        results.append(MasterKey.load_or_create(path))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(created for _, created in results) == 1
    assert {key.to_text() for key, _ in results} == {path.read_text().strip()}
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]


@pytest.mark.parametrize("content", [b"short-secret-value\n", b"\xff\xfe\x00binary"])
def test_load_or_create_refuses_a_bad_file(tmp_path, content):
    path = tmp_path / "master.key"
    path.write_bytes(content)
    with pytest.raises(MasterKeyInvalid) as info:
        MasterKey.load_or_create(path)
    assert "master.key" in str(info.value)
    assert "short-secret-value" not in str(info.value)
    assert path.read_bytes() == content


def test_encrypt_round_trip_with_fresh_nonces():
    key = MasterKey.generate()
    first = key.encrypt(b"private key bytes", aad=b"kid-1")
    second = key.encrypt(b"private key bytes", aad=b"kid-1")
    assert first != second
    assert first[:12] != second[:12]
    assert len(first) == 12 + len(b"private key bytes") + 16
    assert key.decrypt(first, aad=b"kid-1") == b"private key bytes"


def _flip(blob: bytes, index: int) -> bytes:
    return blob[:index] + bytes([blob[index] ^ 1]) + blob[index + 1 :]


def test_decrypt_fails_closed():
    key = MasterKey.generate()
    blob = key.encrypt(b"private key bytes", aad=b"kid-1")
    cases = [
        (key, blob, b"kid-2"),
        (MasterKey.generate(), blob, b"kid-1"),
        (key, _flip(blob, 0), b"kid-1"),
        (key, _flip(blob, 20), b"kid-1"),
        (key, _flip(blob, len(blob) - 1), b"kid-1"),
        (key, blob[:-1], b"kid-1"),
        (key, blob[:27], b"kid-1"),
        (key, b"", b"kid-1"),
    ]
    for master, data, aad in cases:
        with pytest.raises(KeyDecryptionFailed) as info:
            master.decrypt(data, aad=aad)
        assert info.value.code == "key_decryption_failed"


def test_repr_and_pickle_hide_the_key():
    key = MasterKey(RAW)
    for text in (repr(key), str(key), f"{key}"):
        assert text == "MasterKey(<hidden>)"
    assert not hasattr(key, "__dict__")
    with pytest.raises(TypeError):
        pickle.dumps(key)
