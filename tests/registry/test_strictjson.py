"""Strict JSON: one reading of the bytes, or an error with a stable code."""

from __future__ import annotations

import msgspec
import pytest

from registry.core.strictjson import JsonError, parse_strict_json


class Inner(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    name: str
    tags: tuple[str, ...] = ()


class Outer(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    count: int
    inner: Inner
    extra: object = None


def _code(data: bytes, **kwargs) -> str:
    with pytest.raises(JsonError) as excinfo:
        parse_strict_json(data, Outer, **kwargs)
    return excinfo.value.code


def test_parses_a_valid_document():
    parsed = parse_strict_json(b'{"count": 2, "inner": {"name": "a", "tags": ["x"]}}', Outer)
    assert parsed == Outer(count=2, inner=Inner(name="a", tags=("x",)))


@pytest.mark.parametrize(
    "data",
    [
        b'{"count": 1, "count": 2, "inner": {"name": "a"}}',
        b'{"count": 1, "inner": {"name": "a", "name": "b"}}',
        b'{"count": 1, "inner": {"name": "a"}, "extra": [{"k": 1, "k": 1}]}',
    ],
)
def test_duplicate_keys_at_any_depth(data):
    assert _code(data) == "duplicate_key"


@pytest.mark.parametrize(
    "data",
    [
        b'{"count": 1, "inner": {"name": "a"}, "surplus": 1}',
        b'{"count": 1, "inner": {"name": "a", "surplus": 1}}',
    ],
)
def test_unknown_fields_at_any_depth(data):
    assert _code(data) == "unknown_field"


def test_missing_field():
    assert _code(b'{"inner": {"name": "a"}}') == "missing_field"


@pytest.mark.parametrize(
    "data",
    [
        b'{"count": "1", "inner": {"name": "a"}}',
        b'{"count": true, "inner": {"name": "a"}}',
        b'{"count": 1.0, "inner": {"name": "a"}}',
        b'{"count": 1, "inner": ["a"]}',
        b"[]",
    ],
)
def test_wrong_types(data):
    assert _code(data) == "invalid_type"


def test_depth_limit():
    nested = b"[" * 31 + b"]" * 31
    document = b'{"count": 1, "inner": {"name": "a"}, "extra": ' + nested + b"}"
    assert parse_strict_json(document, Outer).count == 1
    deeper = b'{"count": 1, "inner": {"name": "a"}, "extra": [' + nested + b"]}"
    assert _code(deeper) == "too_deep"
    assert _code(document, max_depth=8) == "too_deep"


def test_absurd_nesting_is_too_deep_not_a_crash():
    assert _code(b"[" * 200_000 + b"]" * 200_000) == "too_deep"
    assert _code(b'{"a":' * 100_000 + b"1" + b"}" * 100_000) == "too_deep"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b'{"count": 1, "inner": {"name": "a"}} trailing',
        b'{"count": NaN, "inner": {"name": "a"}}',
        b'{"count": Infinity, "inner": {"name": "a"}}',
        b'{"count": 1, "inner": {"name": "\xff"}}',
        '{"count": 1, "inner": {"name": "a"}}'.encode("utf-16"),
        b"\xef\xbb\xbf{}",
    ],
)
def test_malformed_json(data):
    assert _code(data) == "malformed_json"
