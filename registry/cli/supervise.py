"""The process ``registry serve`` becomes once its checks have passed: uvicorn, little else.

``registry serve`` loads the whole service to check the settings, the database, its
migrations and the keys (``registry.compose.prepare_start``), about 80 MB of modules. It then
replaces itself with ``python -m registry.cli.supervise`` (``os.execv``: the same process id,
so a process manager's signals and waits still reach it), which reads the same settings
again and runs uvicorn. With REGISTRY_WORKERS > 1 uvicorn only starts the workers (fresh
interpreters, which build the service each) and watches them, so the supervisor holds
uvicorn and the settings alone; with one worker this process serves, and builds the service
itself.

Metrics with several workers: before it starts them the supervisor makes a fresh private
directory (``tempfile.mkdtemp``: mode 0700, empty, under TMPDIR) and names it in
PROMETHEUS_MULTIPROC_DIR, so every worker keeps its metrics in files there and ``/metrics``
(``registry.http.observability``) merges them all, whichever worker answers. When a worker
is gone (it died and uvicorn started another, or a SIGHUP or SIGTTOU retired it) the
supervisor calls ``prometheus_client.multiprocess.mark_process_dead`` for it, which removes
its ``live*`` gauges (requests in progress, the KPI gauges); its counters and histograms stay,
as they should, in the totals. The directory is removed when the supervisor ends. With one
worker there is no directory and the variable is unset: the process's own registry serves.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import socket
    from collections.abc import Iterable, Iterator

    import uvicorn
    from uvicorn.supervisors.multiprocess import Multiprocess

    from registry.core.settings import Settings

# prometheus_client's variable, and the deprecated name it still reads.
_MULTIPROC_ENV = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


def become_supervisor() -> NoReturn:
    """Replace this process with a fresh interpreter running ``main`` (never returns)."""
    from registry.core import logs  # noqa: PLC0415

    # exec ends every thread and buffer: what is logged or printed so far goes out first.
    logs.drain()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "registry.cli.supervise"])  # noqa: S606


def _server_options(settings: Settings) -> dict[str, Any]:
    return {
        "factory": True,
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "loop": "uvloop",
        "http": "httptools",
        "log_config": None,
        "timeout_graceful_shutdown": 20,
        # Forwarded headers are read by registry.core.proxies alone (REGISTRY_TRUSTED_PROXIES).
        "proxy_headers": False,
    }


def serve(settings: Settings) -> None:
    import uvicorn  # noqa: PLC0415

    if settings.workers == 1:
        # This process serves, with prometheus_client's in-process registry (no files).
        uvicorn.run("registry.app:app_from_env", **_server_options(settings))
        return
    with metrics_dir() as path:
        # What uvicorn.run does for several workers, with a supervisor that tidies up after
        # the workers it loses.
        config = uvicorn.Config("registry.app:app_from_env", **_server_options(settings))
        sock = config.bind_socket()
        with contextlib.suppress(KeyboardInterrupt):
            _supervisor(config, sock, path).run()


@contextlib.contextmanager
def metrics_dir() -> Iterator[str]:
    """A new private directory for the workers' metric files, named in PROMETHEUS_MULTIPROC_DIR
    while it lasts (the workers, started meanwhile, inherit it) and removed afterwards."""
    # Never one inherited from the environment: files left by another run would be counted.
    path = tempfile.mkdtemp(prefix="registry-metrics-")
    drop_metrics_dir()
    os.environ[_MULTIPROC_ENV[0]] = path
    try:
        yield path
    finally:
        os.environ.pop(_MULTIPROC_ENV[0], None)
        shutil.rmtree(path, ignore_errors=True)


def _supervisor(config: uvicorn.Config, sock: socket.socket, path: str) -> Multiprocess:
    from uvicorn.supervisors.multiprocess import Multiprocess  # noqa: PLC0415

    class Supervisor(Multiprocess):
        """uvicorn's supervisor, which also marks each worker it loses dead for the metrics.

        uvicorn has no hook for a worker's end. Every half second its loop handles the
        signals (SIGHUP replaces the workers, SIGTTOU retires one), then replaces any worker
        that died; a worker is joined before it leaves ``processes``, so a process id that
        left the list since the last round is a dead worker's."""

        known: frozenset[int] = frozenset()

        def keep_subprocess_alive(self) -> None:
            super().keep_subprocess_alive()
            workers = frozenset(p.pid for p in self.processes if p.pid is not None)
            gone = self.known - workers
            self.known = workers
            if gone:
                forget_workers(gone, path)

    return Supervisor(config, sockets=[sock])


def forget_workers(pids: Iterable[int], path: str) -> None:
    """Remove the ``live*`` gauges of these ended workers from the metric files in ``path``."""
    from prometheus_client.multiprocess import mark_process_dead  # noqa: PLC0415

    for pid in pids:
        mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def drop_metrics_dir() -> None:
    """Unset PROMETHEUS_MULTIPROC_DIR (and its old name), inherited from the environment:
    only ``metrics_dir`` names one, fresh. Before anything imports prometheus_client."""
    for name in _MULTIPROC_ENV:
        os.environ.pop(name, None)


def main() -> int:
    # First, before anything imports prometheus_client.
    drop_metrics_dir()
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
