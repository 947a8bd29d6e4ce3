"""The use vocabulary as the consent domain serves and enforces it.

The vocabulary itself (``USES``, ``VERSION``, ``is_known_use``) is ``verifier.uses``, one
floor down, where the gate's policy loader and offline readers share it; this module adds
the view ``GET /v1/uses`` serves and the checks that raise the consent domain's errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from registry.consent.errors import UsesDuplicateError, UsesNotPermittedError, UseUnknownError
from verifier.uses import USES, VERSION, is_known_use

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable

__all__ = [
    "USES",
    "VERSION",
    "Use",
    "Vocabulary",
    "is_known_use",
    "require_known_uses",
    "require_permitted_uses",
    "vocabulary",
]


class Use(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    description: str


class Vocabulary(msgspec.Struct, kw_only=True, frozen=True):
    """The vocabulary as served to clients (``GET /v1/uses``)."""

    version: int
    uses: tuple[Use, ...]


def vocabulary() -> Vocabulary:
    return Vocabulary(
        version=VERSION,
        uses=tuple(Use(id=name, description=text) for name, text in USES.items()),
    )


def require_known_uses(uses: Iterable[str]) -> tuple[str, ...]:
    """``uses`` as a tuple, in order; raises use_unknown or uses_duplicate."""
    result = tuple(uses)
    unknown = sorted({use for use in result if not is_known_use(use)})
    if unknown:
        shown = ", ".join(repr(use[:64]) for use in unknown[:8])
        raise UseUnknownError(f"unknown use(s) {shown}; see the vocabulary version {VERSION}")
    if len(set(result)) != len(result):
        raise UsesDuplicateError("a use is listed more than once")
    return result


def require_permitted_uses(requested: Iterable[str], permitted: Collection[str]) -> tuple[str, ...]:
    """The requested uses, checked to be known, distinct and a subset of ``permitted``."""
    result = require_known_uses(requested)
    outside = sorted(set(result).difference(permitted))
    if outside:
        raise UsesNotPermittedError(f"the consent does not permit {', '.join(outside)}")
    return result
