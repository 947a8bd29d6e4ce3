"""Timing helpers and the results table. Numbers are printed, never asserted."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    name: str
    ours: Stats
    raw: Stats | None
    raw_name: str = ""

    def ratio(self) -> str:
        if self.raw is None or self.raw.mean_us == 0:
            return "-"
        return f"{self.ours.mean_us / self.raw.mean_us:.2f}x"


@dataclass
class Stats:
    n: int
    mean_us: float
    p50_us: float
    p99_us: float
    per_second: float

    @classmethod
    def of(cls, samples_s: list[float], wall_s: float | None = None) -> Stats:
        us = sorted(s * 1e6 for s in samples_s)
        total = wall_s if wall_s is not None else sum(samples_s)
        return cls(
            n=len(us),
            mean_us=statistics.fmean(us),
            p50_us=us[len(us) // 2],
            p99_us=us[min(len(us) - 1, int(len(us) * 0.99))],
            per_second=len(us) / total if total else 0.0,
        )


def timed(fn: Callable[[], Any], n: int, warmup: int = 20) -> Stats:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return Stats.of(samples)


async def timed_async(fn: Callable[[], Awaitable[Any]], n: int, warmup: int = 20) -> Stats:
    for _ in range(warmup):
        await fn()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - t)
    return Stats.of(samples)


async def load(fn: Callable[[], Awaitable[Any]], n: int, concurrency: int) -> Stats:
    """n calls with `concurrency` in flight; latency per call and throughput over the wall."""
    samples: list[float] = []
    remaining = iter(range(n))

    async def worker() -> None:
        for _ in remaining:
            t = time.perf_counter()
            await fn()
            samples.append(time.perf_counter() - t)

    for _ in range(min(20, n)):
        await fn()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Stats.of(samples, time.perf_counter() - start)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    msg = f"nothing listened on 127.0.0.1:{port} within {timeout}s"
    raise RuntimeError(msg)


class Server:
    """A real registry process (uvicorn) on loopback, on a database of its own."""

    def __init__(self, database_url: str, env: dict[str, str] | None = None) -> None:
        import keys

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_key = "rk_" + "B" * 43
        self.data_dir = tempfile.mkdtemp(prefix="registry-bench-")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")},
            "REGISTRY_DATABASE_URL": database_url,
            "REGISTRY_MASTER_KEY": keys.MasterKey.generate().to_text(),
            "REGISTRY_BOOTSTRAP_ADMIN_KEY": self.admin_key,
            "REGISTRY_PORT": str(self.port),
            "REGISTRY_DATA_DIR": self.data_dir,
            "REGISTRY_LOG_LEVEL": "WARNING",
            # The benchmark measures work, not the limiter.
            "REGISTRY_RATE_LIMIT_PER_MINUTE": "100000000",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "registry.cli", "serve"],
            env=self.env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def database_urls(count: int) -> Iterator[str]:
    """Fresh databases on an embedded PostgreSQL (or REGISTRY_BENCH_DATABASE_URL's server)."""
    import asyncpg
    import pgserver

    base = os.environ.get("REGISTRY_BENCH_DATABASE_URL")
    if base is None:
        pgdata = Path(tempfile.mkdtemp(prefix="registry-bench-pg-"))
        base = str(pgserver.get_server(pgdata, cleanup_mode="delete").get_uri())

    async def create(name: str) -> None:
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    from urllib.parse import urlsplit, urlunsplit

    for i in range(count):
        name = f"bench_{os.getpid()}_{i}"
        asyncio.run(create(name))
        yield urlunsplit(urlsplit(base)._replace(path=f"/{name}"))


def print_table(title: str, rows: list[Row]) -> None:
    print(f"\n## {title}\n")
    print("| benchmark | ours mean | ours p99 | ours /s | raw (same run) | raw mean | ratio |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for r in rows:
        raw = r.raw
        print(
            f"| {r.name} | {r.ours.mean_us:,.0f} µs | {r.ours.p99_us:,.0f} µs | "
            f"{r.ours.per_second:,.0f} | {r.raw_name or '-'} | "
            f"{(f'{raw.mean_us:,.0f} µs') if raw else '-'} | {r.ratio()} |"
        )
