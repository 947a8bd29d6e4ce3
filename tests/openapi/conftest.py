"""A live `registry serve` for the OpenAPI checks: they talk to it over real HTTP, as a
client generated from the document or a fuzzer reading it would."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.faults import support
from tests.support import service_url

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def live_service(database_url: str, tmp_path: Path) -> Iterator[support.Service]:
    """The service as its own role, on this test's database (migrated by the template)."""
    env = support.service_env(service_url(database_url), tmp_path, support.free_port())
    with support.running(env, tmp_path / "serve.log") as service:
        yield service
