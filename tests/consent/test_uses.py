"""The use vocabulary: content, version and the validation helpers."""

from __future__ import annotations

import msgspec
import pytest

from registry.consent import (
    USES,
    USES_VERSION,
    ConsentError,
    is_known_use,
    require_known_uses,
    require_permitted_uses,
    vocabulary,
)

DESIGN_USES = {
    "reference.generate",
    "edit.transform",
    "likeness.stylize",
    "likeness.match",
    "transform.face_swap",
    "transform.age",
    "transform.body",
    "content.suggestive",
    "content.explicit",
    "publish.public",
    "commercial",
    "ai.training",
}


def test_vocabulary_is_the_one_design_names():
    assert set(USES) == DESIGN_USES
    assert all(text.strip() and "\n" not in text for text in USES.values())


def test_vocabulary_as_served():
    served = msgspec.json.decode(msgspec.json.encode(vocabulary()))
    assert served["version"] == USES_VERSION == 2
    assert [use["id"] for use in served["uses"]] == list(USES)
    assert served["uses"][0] == {
        "id": "reference.generate",
        "description": USES["reference.generate"],
    }


def test_vocabulary_cannot_be_changed_at_runtime():
    with pytest.raises(TypeError):
        USES["content.anything"] = "x"  # type: ignore[index]


@pytest.mark.parametrize("use", ["commercial", "transform.face_swap"])
def test_known(use):
    assert is_known_use(use)


@pytest.mark.parametrize("use", ["Commercial", "transform", "", None, 3, "commercial "])
def test_unknown(use):
    assert not is_known_use(use)


def test_require_known_keeps_order():
    assert require_known_uses(["publish.public", "commercial"]) == ("publish.public", "commercial")


def test_require_known_rejects_unknown():
    with pytest.raises(ConsentError) as excinfo:
        require_known_uses(["commercial", "content.extreme"])
    assert excinfo.value.code == "use_unknown"
    assert excinfo.value.kind == "invalid"
    assert "content.extreme" in excinfo.value.message


def test_require_known_rejects_duplicates():
    with pytest.raises(ConsentError) as excinfo:
        require_known_uses(["commercial", "commercial"])
    assert excinfo.value.code == "uses_duplicate"


def test_require_permitted_subset():
    permitted = {"reference.generate", "likeness.stylize"}
    assert require_permitted_uses(["likeness.stylize"], permitted) == ("likeness.stylize",)
    with pytest.raises(ConsentError) as excinfo:
        require_permitted_uses(["likeness.stylize", "content.explicit"], permitted)
    assert excinfo.value.code == "uses_not_permitted"
    with pytest.raises(ConsentError) as excinfo:
        require_permitted_uses(["nope"], permitted)
    assert excinfo.value.code == "use_unknown"
