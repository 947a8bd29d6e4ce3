"""Embedded mode: the service stops the PostgreSQL it started, even after that server was
restarted under it (a new postmaster, a new pid)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.request

import psutil

from registry.core import db
from tests.faults import support

# pgserver runs PostgreSQL as a user of its own when we are root.
PG_USER = "pgserver" if os.geteuid() == 0 else None


def _postgres_processes(pgdata: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["name"] == "postgres" and pgdata in " ".join(proc.info["cmdline"] or ()):
                found.append(proc)
    return found


def test_sigterm_stops_the_embedded_postgres_after_it_restarted() -> None:
    data_dir = support.short_tmp("rf-emb-")
    pgdata = data_dir / "pg"
    env = support.service_env("", data_dir, support.free_port())
    del env["REGISTRY_DATABASE_URL"], env["REGISTRY_MASTER_KEY"]
    service = support.Service(env, data_dir / "serve.log")
    try:
        service.wait_ready()
        before = {p.pid for p in _postgres_processes(str(pgdata))}
        support.pg_ctl(
            pgdata, "-m", "immediate", "-l", str(pgdata / "log"), "restart", user=PG_USER
        )
        service.wait_ready(timeout=10)
        with urllib.request.urlopen(f"{service.base_url}/.well-known/jwks.json", timeout=5) as r:  # noqa: S310 - loopback
            assert r.status == 200
        after = {p.pid for p in _postgres_processes(str(pgdata))}
        assert after, "no server after the restart"
        assert not after & before, "the server did not restart"

        # uvicorn re-raises SIGTERM once it has shut down (the lifespan closed everything).
        assert service.stop() in {0, -signal.SIGTERM}, service.log()
        deadline = time.monotonic() + 10
        while _postgres_processes(str(pgdata)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _postgres_processes(str(pgdata)) == [], "PostgreSQL outlived the service"
        assert not (pgdata / "postmaster.pid").exists()
    finally:
        service.kill()
        if (pgdata / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                support.pg_ctl(pgdata, "-m", "immediate", "stop", user=PG_USER)
        shutil.rmtree(data_dir, ignore_errors=True)


async def test_release_follows_the_restarted_server() -> None:
    """pgserver knows the postmaster by the pid it saw at start; release must stop the one
    running now. (Where init reaps the old postmaster at once, pgserver alone would skip the
    stop; here the old pid may linger as a zombie, so the handle's pid is checked too.)"""
    data_dir = support.short_tmp("rf-rel-")
    pgdata = data_dir / "pg"
    try:
        embedded = await db.start_embedded(data_dir)
        support.pg_ctl(
            pgdata, "-m", "immediate", "-l", str(pgdata / "log"), "restart", user=PG_USER
        )
        live = int((pgdata / "postmaster.pid").read_text().split()[0])
        embedded.release()
        assert embedded._server.get_pid() == live
        assert _postgres_processes(str(pgdata)) == []
        assert not (pgdata / "postmaster.pid").exists()
    finally:
        if (pgdata / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                support.pg_ctl(pgdata, "-m", "immediate", "stop", user=PG_USER)
        shutil.rmtree(data_dir, ignore_errors=True)
