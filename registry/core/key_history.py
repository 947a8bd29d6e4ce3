"""The signed key history (``/.well-known/registry-keys.json``): every key that ever signed,
with its period, so what was signed before a rotation still verifies offline. Served over
HTTP and written into tenant exports, from one document per ring."""

from __future__ import annotations

import hashlib
import weakref
from typing import TYPE_CHECKING

import msgspec

from verifier.key_history import KEY_HISTORY_TYP, key_history_claims

if TYPE_CHECKING:
    from keys import KeyPeriod, KeyRing


class _HistoryDocument(msgspec.Struct, frozen=True, kw_only=True):
    periods: tuple[KeyPeriod, ...]
    issuer: str
    token: str
    etag: str


# One signed document per ring, made again only when a rotation changes the history (the
# ring hands out the same tuple until then): Ed25519 signatures are deterministic, so every
# process serves the same bytes and the same ETag.
_documents: weakref.WeakKeyDictionary[KeyRing, _HistoryDocument] = weakref.WeakKeyDictionary()


def key_history_document(ring: KeyRing, *, issuer: str) -> tuple[str, str]:
    """The signed key history of ``ring`` and its ETag."""
    periods = ring.history()
    cached = _documents.get(ring)
    if cached is None or cached.periods is not periods or cached.issuer != issuer:
        claims = key_history_claims(
            issuer=issuer, keys=[(p.jwk, p.not_before, p.not_after) for p in periods]
        )
        token = ring.sign_jws(claims, typ=KEY_HISTORY_TYP)
        etag = '"' + hashlib.sha256(token.encode("ascii")).hexdigest()[:32] + '"'
        cached = _HistoryDocument(periods=periods, issuer=issuer, token=token, etag=etag)
        _documents[ring] = cached
    return cached.token, cached.etag
