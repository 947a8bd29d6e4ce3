"""Running a command against the service's parts (database, keyring, settings)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from registry.core.settings import Settings
    from registry.services import Services


async def with_services(settings: Settings, work: Callable[[Services], Awaitable[int]]) -> int:
    """Build the services, run ``work`` with them and close them; ``work``'s exit code."""
    from registry.compose import build_services  # noqa: PLC0415 - keeps `--help` fast

    # Unbounded statements: an operator's import or verification may take minutes.
    services = await build_services(settings, bounded=False)
    try:
        return await work(services)
    finally:
        await services.close()
