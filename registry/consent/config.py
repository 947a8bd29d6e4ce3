"""What the consent registry needs from the service settings, composed by the shell.

Its own module so that the operations (submission, issuance) and the facade that binds them
all import it from here, with no import running back up to the facade.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import timedelta

    from cryptography import x509

    from verifier import imaging

__all__ = ["ConsentSettings"]


@dataclass(frozen=True, kw_only=True)
class ConsentSettings:
    """The consent registry's settings (a slice of ``registry.core.settings.Settings``)."""

    issuer: str
    token_default_ttl: int
    token_max_ttl: int
    max_validity: timedelta
    status_list_size: int
    status_list_ttl: int
    image_limits: imaging.ImageLimits
    token_leeway_seconds: int
    """REGISTRY_TOKEN_LEEWAY: clock skew allowed on a token's ``exp``, ``nbf`` and ``iat``."""
    signer_anchors: tuple[x509.Certificate, ...] = ()
