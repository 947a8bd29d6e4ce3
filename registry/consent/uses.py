"""The controlled, versioned vocabulary of uses a consent can permit or prohibit (DESIGN §4).

A use is a dotted name. The vocabulary only grows: renaming or removing a use would change
the meaning of forms people have already signed, so a change bumps ``VERSION`` and adds.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

import msgspec

from registry.consent.errors import UsesDuplicateError, UsesNotPermittedError, UseUnknownError

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping

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

VERSION = 1

USES: Mapping[str, str] = MappingProxyType(
    {
        "reference.generate": "Use the photo as a reference to generate new images of the person.",
        "edit.transform": "Edit the photo itself (retouching, background, lighting, crop).",
        "likeness.stylize": "Render the person's likeness in another style (drawing, cartoon).",
        "transform.face_swap": "Put the person's face on another body or into another image.",
        "transform.age": "Show the person older or younger than in the photo.",
        "transform.body": "Change the person's body shape, build or physical features.",
        "content.suggestive": "Depict the person in suggestive or revealing (non-explicit) ways.",
        "content.explicit": "Depict the person in sexually explicit content.",
        "publish.public": "Publish resulting images where the public can see them.",
        "commercial": "Use resulting images commercially (advertising, products, sale).",
        "ai.training": "Use the photo or resulting images to train or tune AI models.",
    }
)


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


def is_known_use(use: object) -> bool:
    return isinstance(use, str) and use in USES


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
