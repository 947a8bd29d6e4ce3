"""The controlled, versioned vocabulary of uses a consent can permit or prohibit (DESIGN §4).

A use is a dotted name. The vocabulary only grows: renaming or removing a use would change
the meaning of forms people have already signed, so a change bumps ``VERSION`` and adds.

It lives on this floor because everyone who reads consent needs the one copy: the registry
(forms, tokens, ``GET /v1/uses``), the gate's policy loader (a policy naming a use that does
not exist would fail closed silently) and third parties reading a token offline.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["USES", "VERSION", "is_known_use"]

# 2 added likeness.match (issue 16): face-similarity scores count only with it.
VERSION = 2

USES: Mapping[str, str] = MappingProxyType(
    {
        "reference.generate": "Use the photo as a reference to generate new images of the person.",
        "edit.transform": "Edit the photo itself (retouching, background, lighting, crop).",
        "likeness.stylize": "Render the person's likeness in another style (drawing, cartoon).",
        "likeness.match": "Compare resulting images with the person's face (face similarity).",
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


def is_known_use(use: object) -> bool:
    return isinstance(use, str) and use in USES
