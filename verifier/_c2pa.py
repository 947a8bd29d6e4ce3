"""The one module that talks to the c2pa SDK (c2pa-python 0.38.1).

Settings: in this SDK version settings belong to a ``Context`` (the thread-local
``load_settings`` is deprecated and no longer read by Reader or Builder). Every call here
builds its own Context from explicit settings (about 0.3 ms), so no call depends on global
state and concurrent calls from worker threads need no lock.

Remote manifests are never fetched by the SDK (``verify.remote_manifest_fetch`` off): a
caller that allows a host fetches the manifest itself and passes its bytes in. OCSP fetching
is off unless the caller turns it on. Every SDK exception becomes an outcome (reading) or a
``SigningFailed`` (signing).

Timestamps: with a ``tsa_url`` the SDK itself POSTs an RFC 3161 request for the signature to
that URL while signing (its own HTTP client, which follows no allow-list of ours: the caller
checks the URL's host first) and fails the signing when no usable reply comes back; that
failure becomes ``TimestampUnavailable``. It does not check the TSA's certificate then: the
caller reads the output back with the TSA anchors (``verifier.sign``).
"""

from __future__ import annotations

import io
import json
import re
from typing import TYPE_CHECKING, Any, Literal

import c2pa
import msgspec

from verifier.errors import SigningFailed, TimestampUnavailable
from verifier.report import bounded

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["ReadOutcome", "check_anchors", "read_store", "sign_embedded", "sign_media_types"]

_ALGORITHMS = {"ES256": c2pa.C2paSigningAlg.ES256, "EdDSA": c2pa.C2paSigningAlg.ED25519}
_REMOTE_URL = re.compile(r"from url (\S+)")
_SIGN_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
# How c2pa-rs 0.91 words a timestamp request that got no answer (connection, HTTP status).
_TSA_UNREACHABLE = ("http resolver", "HTTP error", "error sending request", "timed out")


class ReadOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What reading an asset gave: a manifest store, or why there is none."""

    kind: Literal["store", "absent", "remote", "unsupported", "error"]
    store: dict[str, Any] | None = None
    remote_url: str | None = None
    code: str | None = None
    detail: str | None = None


def sign_media_types() -> frozenset[str]:
    return _SIGN_MEDIA_TYPES


def _read_settings(
    anchors_pem: str | None, *, ocsp: bool = False, timestamp_trust: bool = True
) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "verify": {
            "remote_manifest_fetch": False,
            "ocsp_fetch": ocsp,
            "verify_trust": True,
            "verify_timestamp_trust": timestamp_trust,
        }
    }
    if anchors_pem:
        settings["trust"] = {"trust_anchors": anchors_pem}
    return settings


def check_anchors(anchors_pem: str) -> str | None:
    """None when the SDK accepts ``anchors_pem`` as trust anchors, else its reason."""
    try:
        c2pa.Context.from_dict(_read_settings(anchors_pem)).close()
    except c2pa.C2paError as exc:
        return bounded(str(exc), 200)
    return None


def read_store(
    data: bytes,
    format_hint: str | None,
    *,
    anchors_pem: str | None,
    ocsp: bool = False,
    manifest_data: bytes | None = None,
    timestamp_trust: bool = True,
) -> ReadOutcome:
    """Read and validate the manifest store of ``data``; never raises for bad content.

    ``timestamp_trust=False``: the signature's timestamp is checked (signature, digest) but
    not against the anchors, and the signer's certificate is checked at its time. Only for a
    timestamp the caller has found trusted in another read (its ``timeStamp.trusted`` then
    means nothing by itself).
    """
    settings = _read_settings(anchors_pem, ocsp=ocsp, timestamp_trust=timestamp_trust)
    text = _read_json(data, format_hint, settings, manifest_data)
    if isinstance(text, ReadOutcome):
        return text
    try:
        store = json.loads(text)
    except (ValueError, RecursionError):
        store = None
    if not isinstance(store, dict):
        return ReadOutcome(kind="error", code="c2pa.store_unreadable")
    return ReadOutcome(kind="store", store=store)


def _read_json(
    data: bytes, format_hint: str | None, settings: dict[str, Any], manifest_data: bytes | None
) -> str | ReadOutcome:
    try:
        with (
            c2pa.Context.from_dict(settings) as context,
            c2pa.Reader(format_hint, io.BytesIO(data), manifest_data, context) as reader,
        ):
            return str(reader.json())
    except c2pa.C2paError.ManifestNotFound:
        return ReadOutcome(kind="absent")
    except c2pa.C2paError.NotSupported as exc:
        return ReadOutcome(kind="unsupported", code="c2pa.format_unsupported", detail=_msg(exc))
    except c2pa.C2paError as exc:
        message = str(exc)
        if isinstance(exc, c2pa.C2paError.RemoteManifest) or message.startswith("Remote:"):
            found = _REMOTE_URL.search(message)
            url = bounded(found.group(1), 2048) if found else None
            return ReadOutcome(kind="remote", remote_url=url, code="c2pa.remote_manifest")
        return ReadOutcome(kind="error", code=_error_code(exc), detail=_msg(exc))
    except Exception as exc:  # noqa: BLE001 - the native binding can raise anything (ctypes, OSError); none may leak
        return ReadOutcome(kind="error", code="c2pa.sdk_failure", detail=_msg(exc))


def sign_embedded(
    data: bytes,
    media_type: str,
    manifest: Mapping[str, Any],
    *,
    chain_pem: str,
    alg: str,
    sign: Callable[[bytes], bytes],
    thumbnail: bool,
    tsa_url: str | None = None,
) -> bytes:
    """Embed and sign ``manifest`` into ``data``; ``sign`` produces the COSE signature bytes.

    ``sign`` is any callable (a local key, a KMS): the SDK hands it the bytes to be signed.
    ``tsa_url``: an RFC 3161 timestamp authority whose token goes into the signature; when it
    gives none, raises TimestampUnavailable and nothing is signed.
    """
    if media_type not in _SIGN_MEDIA_TYPES:
        raise SigningFailed(f"cannot sign {media_type[:64]!r}")
    sdk_alg = _ALGORITHMS.get(alg)
    if sdk_alg is None:
        raise SigningFailed(f"algorithm {alg[:32]!r} cannot sign C2PA claims")
    callback_errors: list[Exception] = []

    def callback(to_sign: bytes) -> bytes:
        try:
            return sign(to_sign)
        except Exception as exc:
            # The SDK swallows callback exceptions (it only sees -1); keep ours for the cause.
            callback_errors.append(exc)
            raise

    settings = {"builder": {"thumbnail": {"enabled": thumbnail}}, **_read_settings(None)}
    output = io.BytesIO()
    try:
        with (
            c2pa.Signer.from_callback(callback, sdk_alg, chain_pem, tsa_url) as signer,
            c2pa.Context.from_dict(settings) as context,
            c2pa.Builder(dict(manifest), context) as builder,
        ):
            builder.sign(signer, media_type, io.BytesIO(data), output)
    except c2pa.C2paError as exc:
        cause = callback_errors[0] if callback_errors else None
        if tsa_url and cause is None and isinstance(exc, c2pa.C2paError.Signature):
            raise _timestamp_failure(exc) from None
        raise SigningFailed(f"the C2PA SDK could not sign: {_msg(exc)}") from cause
    return output.getvalue()


def _timestamp_failure(exc: c2pa.C2paError) -> TimestampUnavailable:
    # The SDK's text may name the TSA's URL (operator configuration): not for the client.
    message = str(exc)
    if any(phrase in message for phrase in _TSA_UNREACHABLE):
        return TimestampUnavailable(
            "the timestamp authority is unreachable or answered an HTTP error; nothing was signed",
            reason="unreachable",
        )
    inner = message.split("internal error", 1)[-1].strip(" ()")
    return TimestampUnavailable(
        "the timestamp authority's reply is not a timestamp for this request "
        f"({bounded(inner, 120) or 'unreadable'}); nothing was signed",
        reason="bad_reply",
    )


def _error_code(exc: c2pa.C2paError) -> str:
    name = type(exc).__name__.removeprefix("_C2pa")
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return f"c2pa.{snake}" if snake and snake != "c2pa_error" else "c2pa.error"


def _msg(exc: BaseException) -> str:
    return bounded(str(exc), 300) or type(exc).__name__
