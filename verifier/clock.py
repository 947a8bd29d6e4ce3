"""The clock leeway for time claims (``exp``, ``nbf``, ``iat``) of tokens and status lists.

One value for every check, online and offline: the registry's ``REGISTRY_TOKEN_LEEWAY``
defaults to ``DEFAULT_LEEWAY_SECONDS`` and may not exceed ``MAX_LEEWAY_SECONDS``, and
``python -m verifier`` takes the same default and bounds for ``--leeway``. A leeway only
absorbs clock skew between machines; a larger one would quietly lengthen every token.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_LEEWAY_SECONDS", "MAX_LEEWAY_SECONDS"]

DEFAULT_LEEWAY_SECONDS: Final = 5
MAX_LEEWAY_SECONDS: Final = 60
