from __future__ import annotations

import msgspec
import pytest

from registry import strictjson
from registry.http import body


class Thing(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    count: int
    tags: list[str] = []


def test_parses_valid_json():
    assert strictjson.parse_strict_json(b'{"name": "a", "count": 2}', Thing) == Thing(
        name="a", count=2
    )


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b'{"name": "a", "name": "b", "count": 1}', strictjson.DuplicateKeyError),
        (b'{"name": "a", "count": 1, "extra": true}', strictjson.UnknownFieldError),
        (b'{"name": "a", "count": "1"}', strictjson.InvalidTypeError),
        (b'{"name": "a"}', strictjson.MissingFieldError),
        (b'{"name": "a", "count": 1', strictjson.MalformedJsonError),
        (b"\xff\xfe", strictjson.MalformedJsonError),
        (b'{"name": "a", "count": NaN}', strictjson.MalformedJsonError),
        (
            b'{"name": "a", "count": 1, "tags": ' + b"[" * 40 + b"]" * 40 + b"}",
            strictjson.TooDeepError,
        ),
        (b"[" * 100_000 + b"]" * 100_000, strictjson.TooDeepError),
    ],
)
def test_rejects(raw, error):
    with pytest.raises(error) as info:
        strictjson.parse_strict_json(raw, Thing, max_depth=32)
    assert info.value.kind == "malformed"


def test_nested_duplicate_key_is_found():
    class Outer(msgspec.Struct):
        inner: dict[str, int]

    with pytest.raises(strictjson.DuplicateKeyError):
        strictjson.parse_strict_json(b'{"inner": {"x": 1, "x": 2}}', Outer)


@pytest.mark.parametrize("ctype", ["text/plain", "", "application/x-www-form-urlencoded"])
def test_content_type_must_be_json(ctype):
    with pytest.raises(body.UnsupportedMediaType):
        body.require_json(ctype)


@pytest.mark.parametrize(
    "ctype", ["application/json", "application/json; charset=utf-8", "application/merge-patch+json"]
)
def test_json_content_types(ctype):
    body.require_json(ctype)
