"""Fixtures of the moderation tests."""

from __future__ import annotations

import pytest

import keys
from moderation import default_policy
from tests.moderation.support import NOW, LocalConsentSource


@pytest.fixture(scope="session")
def policy():
    return default_policy()


@pytest.fixture
def consent_source() -> LocalConsentSource:
    return LocalConsentSource(keys.LocalSigner.generate("EdDSA"), now=lambda: NOW)
