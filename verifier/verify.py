"""Verify the C2PA provenance of an image into a Report.

``verify`` never raises for what is in the file: random bytes, a truncated image, a format
the SDK cannot read, a broken or tampered manifest all come back as a Report state with
codes. Only the caller's own configuration (``TrustSettings``) can raise.

A manifest that lives only at a remote URL is reported as ``remote_manifest`` without any
request, unless the URL's host is on ``allow_remote_hosts``; then this module (not the SDK)
fetches it with a timeout, a size cap and no redirects, and the SDK validates those bytes.

Timestamps are checked against the same anchors as the signer (the SDK knows one trust list).
Anchors for timestamp authorities only (``timestamp_anchors_pem``) are used in further reads of
a stamped manifest whose timestamp the claim anchors did not trust (``_with_timestamp_trust``);
kept apart, a TSA's root never makes a claim signer trusted, while a signer whose certificate
has expired since a trusted timestamp is still checked at that time.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
from cryptography import x509

from verifier import _c2pa
from verifier.errors import TrustSettingsInvalid
from verifier.imaging import sniff_media_type
from verifier.report import Report, State, report_from_store, timestamp_from_store

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["TrustSettings", "verify"]

_SNIFFABLE = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp"})
_SNIFFABLE |= {"image/tiff", "image/heic", "image/avif"}


class TrustSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What a verification trusts and may fetch.

    ``anchors_pem``: the trust anchors (a PEM bundle); empty means nothing is ``trusted``.
    ``allow_remote_hosts``: hosts a remote manifest may be fetched from (default none).
    ``ocsp``: let the SDK fetch OCSP responses (a network request per verification).
    ``timestamp_anchors_pem``: anchors of RFC 3161 timestamp authorities (a PEM bundle), which
    only ever make a timestamp ``trusted``, never a signer.
    """

    anchors_pem: str = ""
    timestamp_anchors_pem: str = ""
    allow_remote_hosts: frozenset[str] = frozenset()
    ocsp: bool = False
    remote_timeout_seconds: float = 5.0
    remote_max_bytes: int = 2 * 1024 * 1024

    def __post_init__(self) -> None:
        for pem, what in ((self.anchors_pem, ""), (self.timestamp_anchors_pem, "timestamp ")):
            if not pem:
                continue
            try:
                anchors = x509.load_pem_x509_certificates(pem.encode("ascii"))
            except (ValueError, UnicodeEncodeError):
                msg = f"{what}trust anchors are not PEM certificates"
                raise TrustSettingsInvalid(msg) from None
            if not anchors:
                raise TrustSettingsInvalid(f"{what}trust anchors hold no certificate")
            reason = _c2pa.check_anchors(pem)
            if reason is not None:
                msg = f"the C2PA SDK refuses the {what}trust anchors: {reason}"
                raise TrustSettingsInvalid(msg)

    @classmethod
    def from_pem(
        cls,
        *bundles: str,
        allow_remote_hosts: Iterable[str] = (),
        timestamp_anchors_pem: str = "",
    ) -> TrustSettings:
        """Anchors from PEM texts (e.g. a public trust list plus our own anchor)."""
        text = "".join(bundle if bundle.endswith("\n") else bundle + "\n" for bundle in bundles)
        return cls(
            anchors_pem=text.strip() and text,
            allow_remote_hosts=frozenset(host.lower() for host in allow_remote_hosts),
            timestamp_anchors_pem=timestamp_anchors_pem.strip() and timestamp_anchors_pem,
        )

    @classmethod
    def from_pem_files(
        cls, *paths: str | Path, allow_remote_hosts: Iterable[str] = ()
    ) -> TrustSettings:
        try:
            texts = [Path(path).read_text("ascii") for path in paths]
        except (OSError, UnicodeDecodeError) as exc:
            raise TrustSettingsInvalid(f"cannot read trust anchors: {exc}") from None
        return cls.from_pem(*texts, allow_remote_hosts=allow_remote_hosts)


def verify(data: bytes, media_type: str | None, trust: TrustSettings) -> Report:
    """The provenance report of ``data``; never raises for bad content."""
    outcome = _c2pa.read_store(
        data, _format_hint(data, media_type), anchors_pem=trust.anchors_pem or None, ocsp=trust.ocsp
    )
    remote_url = None
    fetched: bytes | Report | None = None
    if outcome.kind == "remote":
        remote_url = outcome.remote_url
        fetched = _fetch_remote(remote_url, trust) if remote_url else None
        if isinstance(fetched, Report):
            return fetched
        if fetched is None:
            return Report(
                state="remote_manifest",
                failure_codes=("c2pa.remote_manifest",),
                remote_url=remote_url,
            )
        outcome = _c2pa.read_store(
            data,
            _format_hint(data, media_type),
            anchors_pem=trust.anchors_pem or None,
            ocsp=trust.ocsp,
            manifest_data=fetched,
        )
    if outcome.kind == "store" and outcome.store is not None:
        report = report_from_store(outcome.store)
        manifest_data = fetched if isinstance(fetched, bytes) else None
        report = _with_timestamp_trust(report, data, media_type, trust, manifest_data)
        return msgspec.structs.replace(report, remote_url=remote_url) if remote_url else report
    if outcome.kind == "absent":
        return Report(state="absent")
    codes = (outcome.code,) if outcome.code else ()
    state: State = "unsupported" if outcome.kind == "unsupported" else "invalid"
    return Report(state=state, failure_codes=codes, detail=outcome.detail, remote_url=remote_url)


def _with_timestamp_trust(
    report: Report,
    data: bytes,
    media_type: str | None,
    trust: TrustSettings,
    manifest_data: bytes | None,
) -> Report:
    """The report, when the claim anchors did not trust its timestamp, checked again with the
    timestamp anchors kept apart from the signer's.

    Read 2 (timestamp anchors only) says whether the timestamp is trusted. If it is and the
    signer is not trusted now (e.g. its certificate has expired since), read 3 checks the
    signer against the claim anchors only, at the time the timestamp vouches for (the SDK's
    timestamp trust off: read 2 did that check): the verdict a validator gives who trusts both
    lists, without a TSA root ever vouching for a signer.
    """
    stamp = report.timestamp
    if stamp is None or stamp.trusted or not trust.timestamp_anchors_pem:
        return report
    hint = _format_hint(data, media_type)
    vouched = _c2pa.read_store(
        data, hint, anchors_pem=trust.timestamp_anchors_pem, manifest_data=manifest_data
    )
    again = timestamp_from_store(vouched.store) if vouched.store is not None else None
    if again is None or not again.trusted:
        return report
    if report.state == "trusted":
        return msgspec.structs.replace(report, timestamp=again)
    at_time = _c2pa.read_store(
        data,
        hint,
        anchors_pem=trust.anchors_pem or None,
        ocsp=trust.ocsp,
        manifest_data=manifest_data,
        timestamp_trust=False,
    )
    if at_time.store is None:
        return msgspec.structs.replace(report, timestamp=again)
    return msgspec.structs.replace(report_from_store(at_time.store), timestamp=again)


def _format_hint(data: bytes, media_type: str | None) -> str | None:
    # The bytes decide the format; a declared type only helps for formats we cannot sniff.
    sniffed = sniff_media_type(data)
    if sniffed is not None:
        return sniffed
    declared = (media_type or "").split(";", 1)[0].strip().lower()
    return declared if declared and declared not in _SNIFFABLE else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: object, **_kwargs: object) -> None:
        return None


def _fetch_remote(url: str, trust: TrustSettings) -> bytes | Report | None:
    """The manifest bytes at ``url`` when its host is allowed; None when it is not."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in {"https", "http"} or host not in trust.allow_remote_hosts:
        return None
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=trust.remote_timeout_seconds) as response:
            body: bytes = response.read(trust.remote_max_bytes + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Report(
            state="remote_manifest",
            failure_codes=("c2pa.remote_manifest.fetch_failed",),
            remote_url=url,
            detail=str(exc)[:300],
        )
    if len(body) > trust.remote_max_bytes:
        return Report(
            state="remote_manifest",
            failure_codes=("c2pa.remote_manifest.too_large",),
            remote_url=url,
        )
    return body
