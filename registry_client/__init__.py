"""A typed HTTP client for the registry: consent, tokens, the gate, provenance, lookups.

``pip install 'consent-registry[client]'``; docs/client.md is the guide. The person's side
of consent (a key, signed forms and withdrawals) is ``registry_client.forms``.
"""

from __future__ import annotations

try:
    import httpx  # noqa: F401 - only to say what to install when it is missing
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "registry_client needs httpx: pip install 'consent-registry[client]'"
    ) from exc

from registry_client._core import RetryPolicy
from registry_client.client import DEFAULT_TIMEOUT, AsyncRegistryClient, RegistryClient
from registry_client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    ProblemError,
    RateLimited,
    RegistryClientError,
    Timeout,
    TokenExpired,
    TransportError,
    Unauthenticated,
    Unavailable,
    UnexpectedResponse,
    Unprocessable,
)
from registry_client.forms import FormAsset, FormSigner
from registry_client.models import (
    JWKS,
    Appeal,
    Consent,
    ConsentSubmitted,
    Erasure,
    GateDecision,
    Grant,
    HashLookup,
    HashMatch,
    HashQuery,
    IssuedToken,
    OutputRecord,
    ProvenanceLookup,
    ProvenanceReport,
    Report,
    ReportCategory,
    Resumption,
    SignedOutput,
    SignerEnrolled,
    SourceAsset,
    Suspension,
    Template,
    TokenCheck,
    Withdrawal,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "JWKS",
    "Appeal",
    "AsyncRegistryClient",
    "BadRequest",
    "Conflict",
    "ConnectionFailed",
    "Consent",
    "ConsentSubmitted",
    "Erasure",
    "Forbidden",
    "FormAsset",
    "FormSigner",
    "GateDecision",
    "Grant",
    "HashLookup",
    "HashMatch",
    "HashQuery",
    "IssuedToken",
    "NotFound",
    "OutputRecord",
    "ProblemError",
    "ProvenanceLookup",
    "ProvenanceReport",
    "RateLimited",
    "RegistryClient",
    "RegistryClientError",
    "Report",
    "ReportCategory",
    "Resumption",
    "RetryPolicy",
    "SignedOutput",
    "SignerEnrolled",
    "SourceAsset",
    "Suspension",
    "Template",
    "Timeout",
    "TokenCheck",
    "TokenExpired",
    "TransportError",
    "Unauthenticated",
    "Unavailable",
    "UnexpectedResponse",
    "Unprocessable",
    "Withdrawal",
]
