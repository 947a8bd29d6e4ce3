"""A real RFC 3161 timestamp authority for tests: OpenSSL's ``openssl ts -reply`` behind a
small local HTTP server, with a root CA and a TSA certificate made here (extended key usage
critical ``timeStamping``).

``mode`` makes it misbehave the ways a TSA can: ``garbage`` (a 200 reply that is no
timestamp), ``wrong_nonce`` (a real timestamp for the same digest, answering another nonce),
``untrusted`` (signed by a TSA certificate under a root nobody configured), ``error`` (HTTP
500). ``stop()`` takes it down: the port then refuses connections.
"""

from __future__ import annotations

import datetime as dt
import http.server
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    from collections.abc import Iterator

Mode = Literal["ok", "garbage", "wrong_nonce", "untrusted", "error"]
TSA_NAME = "Test Timestamp Unit"
REPLY_TYPE = "application/timestamp-reply"
_OPENSSL = shutil.which("openssl")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Registry tests"),
        ]
    )


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_tsa_pki(
    directory: Path, label: str, common_name: str = TSA_NAME
) -> tuple[Path, Path, Path]:
    """A root CA and a TSA certificate under it: (root.pem, tsa.pem, tsa.key) in ``directory``."""
    now = dt.datetime.now(dt.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name(f"{label} Root CA")
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=60))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(ca=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(root_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
    paths = (
        directory / f"{label}-root.pem",
        directory / f"{label}.pem",
        directory / f"{label}.key",
    )
    paths[0].write_bytes(_pem(root))
    paths[1].write_bytes(_pem(cert))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def _der_length(data: bytes, position: int) -> tuple[int, int]:
    """(length, offset of the content) of the DER element whose length byte is at position."""
    first = data[position]
    if first < 0x80:
        return first, position + 1
    count = first & 0x7F
    return int.from_bytes(data[position + 1 : position + 1 + count], "big"), position + 1 + count


def other_nonce(query: bytes) -> bytes:
    """The same TimeStampReq (RFC 3161 section 2.4.1) with its nonce changed in one bit."""
    _, position = _der_length(query, 1)  # inside the outer SEQUENCE
    integers = 0
    while position < len(query):
        tag = query[position]
        length, content = _der_length(query, position + 1)
        integers += tag == 0x02
        if integers == 2:
            changed = bytearray(query)
            changed[content + length - 1] ^= 0x01
            return bytes(changed)
        position = content + length
    msg = "the timestamp request carries no nonce"
    raise ValueError(msg)


class LocalTsa:
    """``openssl ts -reply`` behind ``http.server`` on 127.0.0.1, one reply at a time."""

    def __init__(self, directory: Path) -> None:
        if _OPENSSL is None:
            pytest.skip("openssl is not installed")
        self.directory = directory
        self.mode: Mode = "ok"
        self.requests = 0
        self.root, self.cert, self.key = make_tsa_pki(directory, "tsa")
        _, self.rogue_cert, self.rogue_key = make_tsa_pki(directory, "rogue")
        (directory / "serial").write_text("01\n")
        self.config = directory / "ts.cnf"
        self.config.write_text(
            "[ tsa ]\n"
            "default_tsa = tsa_config\n"
            "[ tsa_config ]\n"
            f"serial = {directory / 'serial'}\n"
            "crypto_device = builtin\n"
            "signer_digest = sha256\n"
            "default_policy = 1.3.6.1.4.1.99999.1\n"
            "other_policies = 1.3.6.1.4.1.99999.2\n"
            "digests = sha256, sha384, sha512\n"
            "accuracy = secs:1\n"
            "ordering = no\n"
            "tsa_name = yes\n"
            "ess_cert_id_chain = no\n"
            "ess_cert_id_alg = sha256\n"
        )
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._stopped = False

    @property
    def anchor_pem(self) -> str:
        return self.root.read_text("ascii")

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/tsa"

    def start(self) -> LocalTsa:
        self._thread.start()
        return self

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._server.shutdown()
            self._server.server_close()

    def reply(self, query: bytes) -> tuple[int, bytes]:
        """(HTTP status, body) for one DER TimeStampReq, as the mode says."""
        self.requests += 1
        if self.mode == "error":
            return 500, b"internal error"
        if self.mode == "garbage":
            return 200, b"\x30\x03\x02\x01\x00 this is not a timestamp reply"
        cert, key = (
            (self.rogue_cert, self.rogue_key) if self.mode == "untrusted" else (self.cert, self.key)
        )
        if self.mode == "wrong_nonce":
            query = other_nonce(query)
        with self._lock, tempfile.TemporaryDirectory(dir=self.directory) as work:
            query_file, reply_file = Path(work) / "query.tsq", Path(work) / "reply.tsr"
            query_file.write_bytes(query)
            done = subprocess.run(
                [
                    str(_OPENSSL),
                    "ts",
                    "-reply",
                    "-config",
                    str(self.config),
                    "-queryfile",
                    str(query_file),
                    "-inkey",
                    str(key),
                    "-signer",
                    str(cert),
                    "-out",
                    str(reply_file),
                ],
                capture_output=True,
                check=False,
                timeout=30,
            )
            if done.returncode != 0 or not reply_file.is_file():
                return 500, done.stderr[-500:]
            return 200, reply_file.read_bytes()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        tsa = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, body = tsa.reply(self.rfile.read(length))
                self.send_response(status)
                self.send_header("Content-Type", REPLY_TYPE if status == 200 else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                return

        return Handler


@pytest.fixture
def local_tsa(tmp_path: Path) -> Iterator[LocalTsa]:
    """A running local TSA for this test (stopped after it)."""
    directory = tmp_path / "tsa"
    directory.mkdir()
    tsa = LocalTsa(directory).start()
    yield tsa
    tsa.stop()
