from __future__ import annotations

import pytest

from registry.http import body


@pytest.mark.parametrize("ctype", ["text/plain", "", "application/x-www-form-urlencoded"])
def test_content_type_must_be_json(ctype):
    with pytest.raises(body.UnsupportedMediaType):
        body.require_json(ctype)


@pytest.mark.parametrize(
    "ctype", ["application/json", "application/json; charset=utf-8", "application/merge-patch+json"]
)
def test_json_content_types(ctype):
    body.require_json(ctype)
