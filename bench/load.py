"""HTTP rows: wrk against the service and against its floor, interleaved, medians.

Every HTTP row sends the same request shape to two servers: the service and the HTTP floor
(``bench.floor_server``, a minimal Litestar app on the same uvicorn settings doing the same
library work). wrk (a native load generator, one thread, 16 connections by default) drives
both: a warm-up run each, then rounds that alternate which server goes first. The table
shows the median over rounds of requests per second, p50 and p99 latency, and the ratios.

Settings (environment): BENCH_SECONDS per run (default 5), BENCH_ROUNDS (3), BENCH_WARMUP
seconds (2), BENCH_CONNECTIONS (16).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

SCRIPT = Path(__file__).with_name("wrk.lua")
INSTALL_HINT = (
    "wrk (the native load generator every HTTP row uses) is not installed: run "
    "`apt-get install -y wrk` as root (Debian/Ubuntu), or `make bench` as root, which installs it"
)


def wrk_path() -> str | None:
    return shutil.which("wrk")


@dataclass(frozen=True)
class Settings:
    seconds: int = 5
    rounds: int = 3
    warmup: int = 1
    connections: int = 16

    @classmethod
    def from_env(cls) -> Settings:
        def number(name: str, default: int) -> int:
            value = int(os.environ.get(name, default))
            if value < 1:
                msg = f"{name} must be >= 1"
                raise ValueError(msg)
            return value

        return cls(
            seconds=number("BENCH_SECONDS", cls.seconds),
            rounds=number("BENCH_ROUNDS", cls.rounds),
            warmup=number("BENCH_WARMUP", cls.warmup),
            connections=number("BENCH_CONNECTIONS", cls.connections),
        )


@dataclass(frozen=True)
class Request:
    """What wrk sends, again and again (see wrk.lua)."""

    path: str
    method: str = "GET"
    body: Path | None = None
    content_type: str | None = None
    api_key: str | None = None
    unique: str | None = None
    """A marker in the body that each request replaces with an id of its own."""
    values: Callable[[int], list[str]] | None = None
    """Instead of ids, ``values(n)`` makes n fresh replacements for the marker (one run's)."""

    def env(self, scratch: Path, count: int) -> dict[str, str]:
        values = ""
        if self.values is not None:
            path = scratch / f"values-{uuid.uuid4().hex}.txt"
            path.write_text("".join(f"{v}\n" for v in self.values(count)))
            values = str(path)
        return {
            "BENCH_METHOD": self.method,
            "BENCH_BODY": str(self.body or ""),
            "BENCH_CONTENT_TYPE": self.content_type or "",
            "BENCH_AUTH": self.api_key or "",
            "BENCH_UNIQUE": self.unique or "",
            "BENCH_RUN_ID": uuid.uuid4().hex[:12],
            "BENCH_VALUES": values,
        }


def probe(base_url: str, request: Request, timeout: float = 120) -> tuple[int, bytes]:
    """Send the request once, as wrk will (a fresh id for the marker): status and body."""
    body = request.body.read_bytes() if request.body else None
    if body is not None and request.unique:
        value = request.values(1)[0] if request.values else f"probe-{uuid.uuid4().hex}"
        body = body.replace(request.unique.encode(), value.encode(), 1)
    headers = {}
    if request.content_type:
        headers["Content-Type"] = request.content_type
    if request.api_key:
        headers["Authorization"] = f"Bearer {request.api_key}"
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request(request.method, request.path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check(base_url: str, request: Request, accept: Callable[[bytes], bool] | None = None) -> None:
    """Refuse to measure a request that does not succeed (or says the wrong thing)."""
    status, body = probe(base_url, request)
    if not 200 <= status < 300 or (accept is not None and not accept(body)):
        msg = f"{request.method} {base_url}{request.path} answered {status}: {body[:500]!r}"
        raise RuntimeError(msg)


@dataclass(frozen=True)
class Run:
    """One wrk run."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    """Socket errors, timeouts and HTTP statuses >= 400 together."""

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(base_url: str, request: Request, *, seconds: int, connections: int) -> Run:
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError(INSTALL_HINT)
    command = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "60s",
        "-s",
        str(SCRIPT),
        base_url + request.path,
    ]
    scratch = Path(tempfile.mkdtemp(prefix="bench-wrk-"))
    # Enough values for the fastest floor here (a few hundred requests a second).
    env = request.env(scratch, count=max(1000, 400 * seconds))
    done = subprocess.run(  # noqa: S603 - wrk, with arguments built here
        command,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 120,
    )
    shutil.rmtree(scratch, ignore_errors=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        msg = f"wrk failed ({done.returncode}): {done.stderr[-1000:]} {done.stdout[-1000:]}"
        raise RuntimeError(msg)
    result = json.loads(line.removeprefix("BENCH_JSON "))
    errors = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Run(
        requests=result["requests"],
        seconds=result["duration_us"] / 1e6,
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        errors=errors,
    )


@dataclass(frozen=True)
class Target:
    """One server and the request it gets."""

    label: str
    base_url: str
    request: Request


def interleave(targets: Sequence[Target], settings: Settings) -> dict[str, list[Run]]:
    """A warm-up run per target, then ``rounds`` rounds, each in a rotated order."""
    for target in targets:
        run_wrk(
            target.base_url,
            target.request,
            seconds=settings.warmup,
            connections=settings.connections,
        )
    runs: dict[str, list[Run]] = {t.label: [] for t in targets}
    for round_no in range(settings.rounds):
        shift = round_no % len(targets)
        for target in [*targets[shift:], *targets[:shift]]:
            runs[target.label].append(
                run_wrk(
                    target.base_url,
                    target.request,
                    seconds=settings.seconds,
                    connections=settings.connections,
                )
            )
    return runs


@dataclass(frozen=True)
class Medians:
    per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    """Requests per run (median): how many latencies each p50 and p99 come from."""

    @classmethod
    def of(cls, runs: Sequence[Run]) -> Medians:
        return cls(
            per_second=statistics.median(r.per_second for r in runs),
            p50_ms=statistics.median(r.p50_ms for r in runs),
            p99_ms=statistics.median(r.p99_ms for r in runs),
            errors=sum(r.errors for r in runs),
            requests=round(statistics.median(r.requests for r in runs)),
        )


@dataclass
class HttpRow:
    name: str
    floor: str
    """What the floor does for this row."""
    service: Medians
    floor_runs: Medians


def compare(
    name: str, floor: str, service: Target, floor_target: Target, settings: Settings
) -> HttpRow:
    runs = interleave([service, floor_target], settings)
    return HttpRow(
        name=name,
        floor=floor,
        service=Medians.of(runs[service.label]),
        floor_runs=Medians.of(runs[floor_target.label]),
    )


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "-"


def _ms(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def print_http_table(title: str, rows: Sequence[HttpRow], settings: Settings) -> None:
    print(
        f"\n## {title} (HTTP: wrk -t1 -c{settings.connections} -d{settings.seconds}s, "
        f"{settings.rounds} interleaved rounds after a {settings.warmup}s warm-up, medians)\n"
    )
    print(
        "| benchmark | service req/s | floor req/s | throughput floor/service "
        "| service p50 ms | floor p50 ms | p50 service/floor "
        "| service p99 ms | floor p99 ms | p99 service/floor "
        "| requests per run service/floor | errors service/floor |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        s, f = r.service, r.floor_runs
        if not (s.requests and f.requests):
            print(
                f"| {r.name} | no request completed in a run (service {s.requests}, floor "
                f"{f.requests}): raise BENCH_SECONDS |" + " |" * 10
            )
            continue
        print(
            f"| {r.name} | {s.per_second:,.0f} | {f.per_second:,.0f} | "
            f"{_ratio(f.per_second, s.per_second)} | {_ms(s.p50_ms)} | {_ms(f.p50_ms)} | "
            f"{_ratio(s.p50_ms, f.p50_ms)} | {_ms(s.p99_ms)} | {_ms(f.p99_ms)} | "
            f"{_ratio(s.p99_ms, f.p99_ms)} | {s.requests:,}/{f.requests:,} | "
            f"{s.errors}/{f.errors} |"
        )
    print("\nWhat the floor does (docs/benchmarks.md says what it leaves out):\n")
    floors: dict[str, list[str]] = {}
    for r in rows:
        floors.setdefault(r.floor, []).append(r.name)
    for floor, names in floors.items():
        print(f"- {'; '.join(names)}: {floor}")


@dataclass
class ScalingRow:
    """Throughput with 2 uvicorn workers against 1, for the service and for its floor."""

    name: str
    runs: dict[str, Medians] = field(default_factory=dict)


def print_scaling_table(title: str, rows: Sequence[ScalingRow], settings: Settings) -> None:
    print(
        f"\n## {title} (HTTP: wrk -t1 -c{settings.connections} -d{settings.seconds}s, "
        f"{settings.rounds} interleaved rounds, medians; ratio = 2 workers / 1 worker)\n"
    )
    print(
        "| benchmark | service 1 worker req/s | service 2 workers req/s | service 2w/1w "
        "| floor 1 worker req/s | floor 2 workers req/s | floor 2w/1w | errors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        one, two = r.runs["service-1w"], r.runs["service-2w"]
        f1, f2 = r.runs["floor-1w"], r.runs["floor-2w"]
        errors = sum(m.errors for m in r.runs.values())
        print(
            f"| {r.name} | {one.per_second:,.0f} | {two.per_second:,.0f} | "
            f"{_ratio(two.per_second, one.per_second)} | {f1.per_second:,.0f} | "
            f"{f2.per_second:,.0f} | {_ratio(f2.per_second, f1.per_second)} | {errors} |"
        )
