"""The process ``registry serve`` becomes once its checks have passed: uvicorn, little else.

``registry serve`` loads the whole service to check the settings, the database, its
migrations and the keys (``registry.compose.prepare_start``), about 80 MB of modules. It then
replaces itself with ``python -m registry.cli.supervise`` (``os.execv``: the same process id,
so a process manager's signals and waits still reach it), which reads the same settings
again and runs uvicorn. With REGISTRY_WORKERS > 1 uvicorn only starts the workers (fresh
interpreters, which build the service each) and watches them, so the supervisor holds
uvicorn and the settings alone; with one worker this process serves, and builds the service
itself.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from registry.core.settings import Settings


def become_supervisor() -> NoReturn:
    """Replace this process with a fresh interpreter running ``main`` (never returns)."""
    from registry.core import logs  # noqa: PLC0415

    # exec ends every thread and buffer: what is logged or printed so far goes out first.
    logs.drain()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "registry.cli.supervise"])  # noqa: S606


def serve(settings: Settings) -> None:
    import uvicorn  # noqa: PLC0415

    uvicorn.run(
        "registry.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        log_config=None,
        timeout_graceful_shutdown=20,
        # Forwarded headers are read by registry.core.proxies alone (REGISTRY_TRUSTED_PROXIES).
        proxy_headers=False,
    )


def main() -> int:
    from registry.core import logs  # noqa: PLC0415
    from registry.core import settings as settings_module  # noqa: PLC0415

    try:
        # The environment ``registry serve`` checked (and its REGISTRY_CONFIG_FILE).
        loaded = settings_module.load()
    except settings_module.SettingsError as exc:
        sys.stderr.write(f"registry: configuration error: {exc}\n")
        return 2
    logs.configure(loaded.log_level, json_lines=loaded.log_json)
    serve(loaded)
    return 0


if __name__ == "__main__":
    sys.exit(main())
