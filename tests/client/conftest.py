"""Fixtures for the client tests: one real `registry serve` for the directory, and fresh
callers (their own tenants) for every test, so tests share the process but no records."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.client import support

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.faults.support import Service


@pytest.fixture(scope="session")
def registry(pg_server_url, template_database, service_role, tmp_path_factory) -> Iterator[Service]:
    with support.registry_service(
        pg_server_url, template_database, tmp_path_factory.mktemp("client-service")
    ) as service:
        yield service


@pytest.fixture
def callers(registry) -> support.Callers:
    return support.make_callers(registry.base_url)
