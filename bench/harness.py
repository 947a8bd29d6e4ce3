"""In-process timing, the processes the HTTP rows talk to, and the in-process table.

Numbers are printed, never asserted. HTTP rows are measured by wrk (``bench.load``); the
rows here time Python calls in this process, one at a time.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

REPO = Path(__file__).resolve().parent.parent
ISSUER = "http://registry.bench.test"
"""The service's REGISTRY_ISSUER in every process, so tokens verify whichever port serves."""
IMAGE_THREADS = 2
"""REGISTRY_IMAGE_WORK_THREADS (its default) and the floor's image threads."""


@dataclass
class Stats:
    n: int
    mean_us: float
    p50_us: float
    p99_us: float
    per_second: float

    @classmethod
    def of(cls, samples_s: Sequence[float]) -> Stats:
        us = sorted(s * 1e6 for s in samples_s)
        total = sum(samples_s)
        return cls(
            n=len(us),
            mean_us=statistics.fmean(us),
            p50_us=us[len(us) // 2],
            p99_us=us[min(len(us) - 1, int(len(us) * 0.99))],
            per_second=len(us) / total if total else 0.0,
        )


@dataclass
class Row:
    """An in-process row: our call next to the raw library calls it cannot avoid."""

    name: str
    ours: Stats
    raw: Stats | None
    raw_name: str = ""

    def ratio(self) -> str:
        if self.raw is None or self.raw.mean_us == 0:
            return "-"
        return f"{self.ours.mean_us / self.raw.mean_us:.2f}x"


def timed(fn: Callable[[], Any], n: int, warmup: int = 20) -> Stats:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return Stats.of(samples)


def once(fn: Callable[[], object]) -> Stats:
    start = time.perf_counter()
    fn()
    return Stats.of([time.perf_counter() - start])


def print_table(title: str, rows: Sequence[Row]) -> None:
    print(f"\n## {title} (in-process, one call at a time)\n")
    print("| benchmark | ours mean | ours p99 | ours /s | floor (same run) | floor mean | ratio |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for r in rows:
        raw = r.raw
        print(
            f"| {r.name} | {r.ours.mean_us:,.0f} µs | {r.ours.p99_us:,.0f} µs | "
            f"{r.ours.per_second:,.0f} | {r.raw_name or '-'} | "
            f"{(f'{raw.mean_us:,.0f} µs') if raw else '-'} | {r.ratio()} |"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            msg = f"the process exited with {proc.returncode} before listening; its log:\n{tail}"
            raise RuntimeError(msg)
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    msg = f"nothing listened on 127.0.0.1:{port} within {timeout}s (log: {log})"
    raise RuntimeError(msg)


class Process:
    """A server process on loopback, its output in a log file; stopped with SIGTERM.

    Ready once the port accepts connections and the log holds ``ready`` once per worker
    (with several workers uvicorn listens before they have started).
    """

    def __init__(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        port: int,
        *,
        ready: str,
        workers: int,
    ) -> None:
        self.name = name
        self.ready = ready
        self.workers = workers
        self.command = command
        self.env = env
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = Path(tempfile.mkdtemp(prefix=f"bench-{name}-")) / "output.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - our own servers
                self.command, env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )
        wait_for_port(self.port, self.proc, self.log, timeout=120)
        deadline = time.monotonic() + 120
        while self.log.read_text(errors="replace").count(self.ready) < self.workers:
            if time.monotonic() > deadline:
                print(f"(warning: {self.name} never logged {self.ready!r} per worker)")
                break
            time.sleep(0.2)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if exc_type is None:
            shutil.rmtree(self.log.parent, ignore_errors=True)
        else:
            print(f"({self.name}'s log is kept: {self.log})")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "BENCH_"))}


class Service(Process):
    """``registry serve`` (uvicorn, as cmd_serve starts it) on a database of its own.

    Settings are the defaults but for the ones named here: the rate limit is raised (the rows
    measure work, not the limiter), the issuer is fixed (see ISSUER), and the C2PA identity
    comes from files the floor signs with too. The access log stays on at the default level
    (INFO, JSON lines), written to the log file, as a deployment would run it.
    """

    def __init__(
        self,
        database_url: str,
        *,
        master_key: str,
        admin_key: str,
        c2pa: dict[str, str],
        workers: int = 1,
    ) -> None:
        port = free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="registry-bench-data-"))
        env = {
            **clean_env(),
            "REGISTRY_DATABASE_URL": database_url,
            "REGISTRY_MASTER_KEY": master_key,
            "REGISTRY_BOOTSTRAP_ADMIN_KEY": admin_key,
            "REGISTRY_PORT": str(port),
            "REGISTRY_WORKERS": str(workers),
            "REGISTRY_ISSUER": ISSUER,
            # Unused with an external database but for the development master key file.
            "REGISTRY_DATA_DIR": str(self.data_dir),
            "REGISTRY_RATE_LIMIT_PER_MINUTE": "100000000",
            "REGISTRY_IMAGE_WORK_THREADS": str(IMAGE_THREADS),
            **c2pa,
        }
        super().__init__(
            f"service-{workers}w",
            [sys.executable, "-m", "registry.cli", "serve"],
            env,
            port,
            ready="registry ready",
            workers=workers,
        )

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        super().__exit__(exc_type, *rest)
        shutil.rmtree(self.data_dir, ignore_errors=True)


class Postgres:
    """An embedded PostgreSQL (pgserver), or REGISTRY_BENCH_DATABASE_URL's server."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            # pgserver falls back to /tmp without XDG_RUNTIME_DIR (root shells); harmless.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
            from pgserver.postgres_server import get_server

        self._server: Any = None
        base = os.environ.get("REGISTRY_BENCH_DATABASE_URL")
        if base is None:
            pgdata = Path(tempfile.mkdtemp(prefix="registry-bench-pg-"))
            self._server = get_server(pgdata, cleanup_mode="delete")
            base = str(self._server.get_uri())
        self.base = base
        self._names = itertools.count()

    def database(self) -> str:
        """The URL of a fresh database on this server."""
        import asyncpg

        name = f"bench_{os.getpid()}_{next(self._names)}"

        async def create() -> None:
            conn = await asyncpg.connect(self.base)
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(create())
        return urlunsplit(urlsplit(self.base)._replace(path=f"/{name}"))
